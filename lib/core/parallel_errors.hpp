// An exception that leaves an OpenMP parallel region calls std::terminate: the
// user sees an abort instead of "slmopt: error: ...". Every parallel loop body
// runs inside ParallelErrors::run, and the region is followed by rethrow() on
// the calling thread.
//
// Which error is reported must not depend on the thread count: the failure of
// the lowest iteration index wins, and iterations above a known failure are
// skipped (those below it still run, so the lowest failing index is found).
#pragma once

#include <atomic>
#include <cstdint>
#include <exception>
#include <limits>
#include <mutex>

namespace slmopt {

class ParallelErrors {
 public:
  template <class Fn>
  void run(int64_t index, Fn&& fn) noexcept {
    if (index > first_failed_.load(std::memory_order_relaxed)) return;
    try {
      fn();
    } catch (...) {
      capture(index, std::current_exception());
    }
  }

  // Rethrows the captured error of the lowest index, if any.
  void rethrow() {
    if (failure_) std::rethrow_exception(failure_);
  }

 private:
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::max();

  void capture(int64_t index, std::exception_ptr e) noexcept {
    const std::lock_guard<std::mutex> hold(lock_);
    if (index < first_failed_.load(std::memory_order_relaxed)) {
      first_failed_.store(index, std::memory_order_relaxed);
      failure_ = std::move(e);
    }
  }

  std::atomic<int64_t> first_failed_{kNone};
  std::mutex lock_;
  std::exception_ptr failure_;
};

}  // namespace slmopt
