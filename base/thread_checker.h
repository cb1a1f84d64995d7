#pragma once
// ThreadChecker: asserts (in builds with assertions) that an object is only used from one
// thread. The owner is the first thread that asks, not the constructing one: workers' objects
// are built on the main thread and then used only on their worker's thread.
//
//   void Foo::bar() { assert(thread_.onOwner() && "Foo used from a foreign thread"); }

#include <atomic>
#include <thread>

namespace pushhub {

class ThreadChecker {
 public:
  // True on the owning thread; the first caller becomes the owner.
  bool onOwner() const {
    std::thread::id self = std::this_thread::get_id();
    std::thread::id unowned{};
    return owner_.compare_exchange_strong(unowned, self, std::memory_order_relaxed) ||
           unowned == self;
  }
  // The next caller becomes the owner (the object was handed to another thread).
  void detach() { owner_.store(std::thread::id{}, std::memory_order_relaxed); }

 private:
  mutable std::atomic<std::thread::id> owner_{};
};

}  // namespace pushhub
