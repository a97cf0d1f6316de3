#include "libcompress/runtime/thread_pool.h"

#include <algorithm>
#include <system_error>

namespace slim {

Expected<std::unique_ptr<ThreadPool>> ThreadPool::Create(int threads) {
  if (threads < 1) return InvalidInput("thread count must be at least 1, got ", threads);
  std::unique_ptr<ThreadPool> pool(new ThreadPool());
  try {
    for (int t = 1; t < threads; ++t) pool->workers_.emplace_back([p = pool.get()] { p->WorkerLoop(); });
  } catch (const std::system_error& e) {
    // The destructor stops and joins the workers already started.
    return Internal("cannot start thread ", pool->workers_.size() + 1, " of ", threads, ": ", e.what());
  }
  return pool;
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
  }
  work_cv_.notify_all();
  for (auto& w : workers_) w.join();
}

namespace {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

// Spins until done() or kPoolSpin has passed; true when done() held.
template <typename Done>
bool SpinUntil(const Done& done) {
  const auto start = std::chrono::steady_clock::now();
  for (unsigned i = 1;; ++i) {
    if (done()) return true;
    CpuRelax();
    if (i % 256 == 0) {
      if (std::chrono::steady_clock::now() - start > kPoolSpin) return false;
      std::this_thread::yield();  // a busy host gets the core back
    }
  }
}

}  // namespace

void ThreadPool::Drain() {
  for (size_t i = next_.fetch_add(1); i < tasks_; i = next_.fetch_add(1)) (*task_)(i);
}

void ThreadPool::WorkerLoop() {
  uint64_t seen = 0;
  while (true) {
    const auto ready = [&] { return stop_.load(std::memory_order_acquire) || generation_.load(std::memory_order_acquire) != seen; };
    if (!SpinUntil(ready)) {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, ready);
    }
    if (stop_.load()) return;
    seen = generation_.load(std::memory_order_acquire);
    Drain();
    if (busy_workers_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);  // a caller may be asleep on done_cv_
      done_cv_.notify_one();
    }
  }
}

void ThreadPool::Run(size_t tasks, const std::function<void(size_t)>& task) {
  std::unique_lock<std::mutex> run_lock(run_mu_, std::try_to_lock);
  if (tasks <= 1 || workers_.empty() || !run_lock.owns_lock()) {
    for (size_t i = 0; i < tasks; ++i) task(i);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    task_ = &task;
    tasks_ = tasks;
    next_.store(0);
    busy_workers_.store(workers_.size());
    generation_.fetch_add(1, std::memory_order_release);
  }
  work_cv_.notify_all();  // no system call when every worker is spinning
  Drain();
  // Every worker must have left Drain before task_ (the caller's function)
  // goes out of scope.
  const auto finished = [&] { return busy_workers_.load(std::memory_order_acquire) == 0; };
  if (!SpinUntil(finished)) {
    std::unique_lock<std::mutex> lock(mu_);
    done_cv_.wait(lock, finished);
  }
  task_ = nullptr;
  tasks_ = 0;
}

int HardwareThreads(int cap) {
  const unsigned cores = std::thread::hardware_concurrency();  // 0 when unknown
  return std::max(1, std::min(cap, static_cast<int>(std::min(cores, 1024u))));
}

std::vector<ColumnRange> SplitColumns(size_t n, size_t align, uint64_t work, size_t threads,
                                      uint64_t min_work_per_thread) {
  std::vector<ColumnRange> chunks;
  if (n == 0) return chunks;
  const size_t units = (n + align - 1) / align;
  const uint64_t by_work = min_work_per_thread == 0 ? units : work / min_work_per_thread;
  const size_t count = static_cast<size_t>(
      std::max<uint64_t>(1, std::min<uint64_t>({static_cast<uint64_t>(std::max<size_t>(threads, 1)),
                                                static_cast<uint64_t>(units), by_work})));
  for (size_t c = 0; c < count; ++c) {
    // Balanced split of the aligned units: chunk sizes differ by at most one.
    const size_t u0 = c * units / count, u1 = (c + 1) * units / count;
    chunks.push_back({u0 * align, std::min(n, u1 * align)});
  }
  return chunks;
}

void ParallelColumns(const ParallelContext& ctx, size_t n, uint64_t work,
                     const std::function<void(size_t begin, size_t end)>& fn) {
  const size_t threads = ctx.pool ? static_cast<size_t>(ctx.pool->threads()) : 1;
  const std::vector<ColumnRange> chunks =
      SplitColumns(n, kColumnAlign, work, threads, ctx.min_work_per_thread);
  if (chunks.size() == 1) {
    fn(chunks[0].begin, chunks[0].end);
    return;
  }
  if (chunks.empty()) return;
  ctx.pool->Run(chunks.size(), [&](size_t c) { fn(chunks[c].begin, chunks[c].end); });
}

}  // namespace slim
