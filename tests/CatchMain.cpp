// The Catch2 main lives alone in this file so that it compiles once.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
