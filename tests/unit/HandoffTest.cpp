#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "api/Handoff.h"

using warden::api::Handoff;

TEST_CASE("jobs handed over by other threads run on the io_context's thread in order, a batch a post") {
  boost::asio::io_context ioc;
  auto handoff = std::make_shared<Handoff>(ioc);
  std::vector<int> ran;  // touched by the io_context's thread alone (run() below)
  std::thread producer([&] {
    for (int i = 0; i < 100; ++i) handoff->post([&ran, i] { ran.push_back(i); });
  });
  producer.join();
  CHECK(ran.empty());  // never run at once
  // All hundred were handed over before the io_context ran: one handler ran them all.
  CHECK(ioc.run() == 1);
  REQUIRE(ran.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(ran[i] == i);

  // A job that hands over another runs it in a batch of its own, after the rest of its batch.
  ioc.restart();
  ran.clear();
  handoff->post([&] {
    ran.push_back(1);
    handoff->post([&] { ran.push_back(3); });
  });
  handoff->post([&] { ran.push_back(2); });
  CHECK(ioc.run() == 2);
  CHECK(ran == std::vector<int>{1, 2, 3});
}

TEST_CASE("jobs still queued when their io_context goes are dropped, and what they hold with them") {
  // At shutdown the io_context is destroyed with a batch pending: its jobs hold connections,
  // which hold the Handoff, so unless the jobs are dropped that cycle keeps them all alive.
  std::weak_ptr<int> held;
  std::shared_ptr<Handoff> handoff;
  {
    boost::asio::io_context ioc;
    handoff = std::make_shared<Handoff>(ioc);
    auto connection = std::make_shared<int>(7);
    held = connection;
    handoff->post([connection, handoff] { (void)*connection; });  // as a reply holds its connection
  }
  CHECK(held.expired());
  CHECK(handoff.use_count() == 1);
}

TEST_CASE("a job that throws ends its batch, and no job of it runs twice") {
  boost::asio::io_context ioc;
  auto handoff = std::make_shared<Handoff>(ioc);
  std::vector<char> ran;
  handoff->post([&] { ran.push_back('a'); });
  handoff->post([&] {
    ran.push_back('b');
    throw std::runtime_error("b fails");
  });
  handoff->post([&] { ran.push_back('c'); });
  CHECK_THROWS_AS(ioc.run(), std::runtime_error);
  handoff->post([&] { ran.push_back('d'); });
  ioc.restart();
  ioc.run();
  CHECK(ran == std::vector<char>{'a', 'b', 'd'});
}
