//===- Background.h - One job at a time on a second thread ------*- C++ -*-===//
//
// The training loop hands the next batch's gathering and augmentation to a
// background thread while a step runs, and waits for it before the next
// step: a queue of one batch, so that the generator's draws keep their
// order and training stays bit-identical with and without it.
//
//===----------------------------------------------------------------------===//
#ifndef MASS_RUNTIME_BACKGROUND_H
#define MASS_RUNTIME_BACKGROUND_H

#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>

namespace mass::rt {

class BackgroundJob {
public:
  BackgroundJob() = default;
  BackgroundJob(const BackgroundJob &) = delete;
  BackgroundJob &operator=(const BackgroundJob &) = delete;
  /// Waits for the job in flight, then ends the thread.
  ~BackgroundJob();

  /// Runs `job` on the thread (started on first use); one at a time.
  void start(std::function<void()> job);
  /// Waits for the job in flight, if any; rethrows what it threw.
  void wait();

private:
  void loop();
  std::thread thread;
  std::mutex mutex;
  std::condition_variable changed;
  std::function<void()> job;
  bool pending = false, quit = false;
  std::exception_ptr error;
};

} // namespace mass::rt

#endif // MASS_RUNTIME_BACKGROUND_H
