// CHECK: invariants whose failure is a programmer bug. Aborts with file:line.
// Never use on input data (files, flags, requests): return a Status instead.
#pragma once

namespace reprise {
[[noreturn]] void CheckFailed(const char* file, int line, const char* cond, const char* fmt, ...)
    __attribute__((format(printf, 4, 5)));
}  // namespace reprise

#define CHECK(cond)                                                 \
  do {                                                              \
    if (!(cond)) ::reprise::CheckFailed(__FILE__, __LINE__, #cond, "%s", ""); \
  } while (0)

#define CHECK_MSG(cond, ...)                                                 \
  do {                                                                       \
    if (!(cond)) ::reprise::CheckFailed(__FILE__, __LINE__, #cond, __VA_ARGS__); \
  } while (0)

#ifdef NDEBUG
#define DCHECK(cond) \
  do {               \
  } while (0)
#else
#define DCHECK(cond) CHECK(cond)
#endif
