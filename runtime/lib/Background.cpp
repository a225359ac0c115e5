//===- Background.cpp - One job at a time on a second thread --------------===//

#include "Background.h"

using namespace mass::rt;

BackgroundJob::~BackgroundJob() {
  if (!thread.joinable())
    return;
  {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return !pending; });
    quit = true;
  }
  changed.notify_all();
  thread.join();
}

void BackgroundJob::start(std::function<void()> next) {
  wait();
  if (!thread.joinable())
    thread = std::thread([this] { loop(); });
  {
    std::lock_guard<std::mutex> lock(mutex);
    job = std::move(next);
    pending = true;
  }
  changed.notify_all();
}

void BackgroundJob::wait() {
  std::exception_ptr thrown;
  {
    std::unique_lock<std::mutex> lock(mutex);
    changed.wait(lock, [&] { return !pending; });
    std::swap(thrown, error);
  }
  if (thrown)
    std::rethrow_exception(thrown);
}

void BackgroundJob::loop() {
  std::unique_lock<std::mutex> lock(mutex);
  while (true) {
    changed.wait(lock, [&] { return pending || quit; });
    if (quit)
      return;
    std::function<void()> run = std::move(job);
    lock.unlock();
    std::exception_ptr thrown;
    try {
      run();
    } catch (...) {
      thrown = std::current_exception();
    }
    lock.lock();
    error = thrown;
    pending = false;
    changed.notify_all();
  }
}
