// A doubly linked list threaded through its elements, so that linking and
// unlinking never allocate. An element may sit in several lists at once, one
// Hook member per list. The list does not own its elements.
#pragma once

#include <cassert>
#include <cstddef>

namespace zguard {

template <typename T>
struct Hook {
  T* prev = nullptr;
  T* next = nullptr;
  bool linked = false;
};

template <typename T, Hook<T> T::*kHook>
class IntrusiveList {
 public:
  bool empty() const { return head_ == nullptr; }
  std::size_t size() const { return size_; }
  T* front() const { return head_; }

  void PushBack(T& item) {
    Hook<T>& hook = item.*kHook;
    assert(!hook.linked);
    hook.prev = tail_;
    hook.next = nullptr;
    hook.linked = true;
    if (tail_ != nullptr) {
      (tail_->*kHook).next = &item;
    } else {
      head_ = &item;
    }
    tail_ = &item;
    ++size_;
  }

  void PushFront(T& item) {
    Hook<T>& hook = item.*kHook;
    assert(!hook.linked);
    hook.prev = nullptr;
    hook.next = head_;
    hook.linked = true;
    if (head_ != nullptr) {
      (head_->*kHook).prev = &item;
    } else {
      tail_ = &item;
    }
    head_ = &item;
    ++size_;
  }

  // Unlinks `item` if it is linked; a no-op otherwise.
  void Remove(T& item) {
    Hook<T>& hook = item.*kHook;
    if (!hook.linked) return;
    if (hook.prev != nullptr) {
      (hook.prev->*kHook).next = hook.next;
    } else {
      head_ = hook.next;
    }
    if (hook.next != nullptr) {
      (hook.next->*kHook).prev = hook.prev;
    } else {
      tail_ = hook.prev;
    }
    hook = Hook<T>{};
    --size_;
  }

  T* PopFront() {
    T* item = head_;
    if (item != nullptr) Remove(*item);
    return item;
  }

 private:
  T* head_ = nullptr;
  T* tail_ = nullptr;
  std::size_t size_ = 0;
};

}  // namespace zguard
