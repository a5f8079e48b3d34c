#pragma once
// What the load generators read of a process from /proc (Linux): its CPU time and resident
// memory, to print the server's cost beside the figures.

#include <map>
#include <string>

namespace warden::api {

// One thread of a process as /proc/PID/task/TID shows it.
struct ThreadUsage {
  std::string name;  // comm: Warden names its threads (warden-driver, warden-peers, ...)
  double cpuSeconds = 0;              // user + system
  unsigned long long voluntarySwitches = 0;  // times it slept: a wake-up each
};

double cpuSeconds(long pid);  // user + system, from /proc/PID/stat; 0 if unreadable
// Every thread of `pid` by thread id; empty if unreadable.
std::map<long, ThreadUsage> threadUsage(long pid);
double rssBytes(long pid);    // VmRSS, from /proc/PID/status; 0 if unreadable
double ownCpuSeconds();       // this process's, from getrusage

}  // namespace warden::api
