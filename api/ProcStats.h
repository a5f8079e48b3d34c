#pragma once
// What the load generators read of a process from /proc (Linux): its CPU time and resident
// memory, to print the server's cost beside the figures.

namespace warden::api {

double cpuSeconds(long pid);  // user + system, from /proc/PID/stat; 0 if unreadable
double rssBytes(long pid);    // VmRSS, from /proc/PID/status; 0 if unreadable
double ownCpuSeconds();       // this process's, from getrusage

}  // namespace warden::api
