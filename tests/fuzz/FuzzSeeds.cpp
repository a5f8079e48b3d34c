// Writes the binary seed corpora of the fuzz targets (tests/fuzz/EncodingSamples.cpp), so that
// each seed is a frame or a record Warden itself would produce:
//   fuzz_seeds DIR   writes DIR/record/* and DIR/peer_frame/* (DIR is usually tests/fuzz/corpus)
// The text corpora (url, json_codec, router) are written by hand.

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "tests/fuzz/EncodingSamples.h"

namespace {

namespace fs = std::filesystem;

void write(const fs::path& dir, const std::vector<warden::tests::Sample>& samples) {
  fs::create_directories(dir);
  for (const auto& sample : samples) std::ofstream(dir / sample.name, std::ios::binary) << sample.bytes;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds DIR   (writes DIR/record and DIR/peer_frame)\n");
    return 2;
  }
  const fs::path root = argv[1];
  write(root / "record", warden::tests::recordSamples());
  write(root / "peer_frame", warden::tests::peerFrameSamples());
  return 0;
}
