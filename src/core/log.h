// Logging with a component tag, to stderr, as text or one JSON object a line.
// The sink settings are process-wide (set once by tools/ at start-up).
#pragma once

namespace reprise {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };
enum class LogFormat { kText, kJson };

void SetLogLevel(LogLevel level);
void SetLogFormat(LogFormat format);
bool LogEnabled(LogLevel level);
void Log(LogLevel level, const char* component, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

}  // namespace reprise

#define LOG_DEBUG(component, ...)                                                   \
  do {                                                                              \
    if (::reprise::LogEnabled(::reprise::LogLevel::kDebug))                         \
      ::reprise::Log(::reprise::LogLevel::kDebug, component, __VA_ARGS__);          \
  } while (0)
#define LOG_INFO(component, ...) ::reprise::Log(::reprise::LogLevel::kInfo, component, __VA_ARGS__)
#define LOG_WARN(component, ...) ::reprise::Log(::reprise::LogLevel::kWarn, component, __VA_ARGS__)
#define LOG_ERROR(component, ...) \
  ::reprise::Log(::reprise::LogLevel::kError, component, __VA_ARGS__)
