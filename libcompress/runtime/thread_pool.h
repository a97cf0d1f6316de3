// Threads for the runtime's large matrix products, and the rule that keeps
// their results independent of the thread count.
//
// The pool lives in the runtime, not in libcompress/kernels: kernels stay
// pure functions over pointers that compute a given range of output columns
// (gemm_f32.h by pointer offsets, gemm_q.h by QGemmArgs::n_begin/n_end), and
// the runtime, which owns the execution resources of a session, decides how
// to cut a product into ranges. One pool is created per Interpreter (so per
// DecoderSession) and reused by every op call.
//
// Determinism: a product is split only along its N output columns, into
// contiguous chunks whose starts are multiples of kColumnAlign; the K
// reduction is never split. Every output element is then computed by the
// same kernel with the same arithmetic in the same order as on one thread,
// so outputs are byte-identical for any thread count (tests/runtime/
// test_threads.cpp checks 1, 2, 3 and 7 threads).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "libcompress/common/status.h"

namespace slim {

// Fixed set of worker threads that run the tasks of one job at a time, the
// calling thread taking part.
class ThreadPool {
 public:
  // `threads` counts the caller: threads - 1 workers are started. Fails
  // (Internal) when the system refuses to start a thread.
  static Expected<std::unique_ptr<ThreadPool>> Create(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs task(i) once for every i in [0, tasks) and returns when all have
  // finished. Tasks may run on any thread in any order, so they must write
  // disjoint outputs. Safe to call from several threads: while one job runs,
  // another caller runs its tasks itself (same results, no waiting for the
  // pool); a task must not call Run.
  void Run(size_t tasks, const std::function<void(size_t)>& task);

 private:
  ThreadPool() = default;
  void WorkerLoop();
  void Drain();  // takes task indices until none is left

  std::mutex run_mu_;  // held by the caller whose job the workers are running
  // Job hand-off. A new job bumps generation_ (release) after setting
  // task_/tasks_/next_; workers spin on it for kSpin before sleeping on
  // work_cv_, and the caller spins on busy_workers_ before sleeping on
  // done_cv_: a decode step hands out about a hundred jobs a few tens of
  // microseconds apart, and a condition-variable wake-up alone costs ~60 us
  // on some hosts (docs/PERFORMANCE.md). mu_ orders the sleeping paths.
  std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  const std::function<void(size_t)>* task_ = nullptr;
  size_t tasks_ = 0;
  std::atomic<size_t> next_{0};
  std::atomic<size_t> busy_workers_{0};  // workers that have not finished the current job
  std::atomic<uint64_t> generation_{0};  // bumped per job; workers wait for a change
  std::atomic<bool> stop_{false};
  std::vector<std::thread> workers_;
};

// How long a worker (or the caller) spins before sleeping: about two job
// gaps of a decode step.
inline constexpr std::chrono::microseconds kPoolSpin{200};

// Column chunks start at multiples of 16: the q4*_x8 weight block (8 rows)
// divides it, it is the AVX2 float panel width (gemm_f32_avx2.cpp kNr), and
// 16 float32 outputs are one 64-byte cache line, so threads writing
// neighbouring chunks of a row do not share lines.
inline constexpr size_t kColumnAlign = 16;

// Multiply-adds per thread below which a product is not split further.
// The int4 i8-dot decode kernel does 2^18 multiply-adds in ~6 us. With
// sleeping workers an empty 2-thread Run cost ~6 us on the Intel host and
// 61 us on the AMD EPYC VM (2026-12-02), and the threshold was 2^20; the
// spinning hand-off costs 0.2 us median (20 us p99), so chunks of 2^18 pay:
// TinyLlama's K/V projections (2048 x 256 at decode) now split too.
// Interleaved A/B on that VM, int4 decode at 2 threads, 6 runs: 2^20 47.1,
// 2^18 51.8 tok/s (medians). All of kjv-byte (at most 128 x 384) stays on the
// calling thread.
inline constexpr uint64_t kDefaultMinWorkPerThread = uint64_t{1} << 18;

// How an op may split its work: the session's pool (null = one thread) and
// the threshold above.
struct ParallelContext {
  ThreadPool* pool = nullptr;
  uint64_t min_work_per_thread = kDefaultMinWorkPerThread;
};

// The cores the host reports (std::thread::hardware_concurrency), at least
// 1 and at most `cap`: a default for interactive tools; the library's own
// default is one thread.
int HardwareThreads(int cap);

struct ColumnRange {
  size_t begin = 0;
  size_t end = 0;
};

// Cuts [0, n) into at most `threads` contiguous, balanced chunks whose
// starts are multiples of `align` (the last ends at n), using no more chunks
// than work / min_work_per_thread (at least one). Empty when n == 0.
std::vector<ColumnRange> SplitColumns(size_t n, size_t align, uint64_t work, size_t threads,
                                      uint64_t min_work_per_thread);

// Runs fn(begin, end) for every chunk of SplitColumns(n, kColumnAlign, work,
// pool threads, ...): on the calling thread alone when there is one chunk.
// `work` is the product's multiply-add count (M * N * K).
void ParallelColumns(const ParallelContext& ctx, size_t n, uint64_t work,
                     const std::function<void(size_t begin, size_t end)>& fn);

}  // namespace slim
