#include "registry/hiredis_asio.h"

#include <hiredis/async.h>
#include <sys/ioctl.h>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <memory>

namespace pushhub::registry {
namespace {

namespace asio = boost::asio;

// Asio's epoll reactor is edge-triggered and a wait operation never checks readiness up front,
// while hiredis reads at most 16 KiB per redisAsyncHandleRead(). So after each read we look at
// FIONREAD and keep reading (or post ourselves) while bytes are left, instead of waiting for an
// edge that already happened.
constexpr int kMaxReadsPerWakeup = 64;

class AsioEvents : public std::enable_shared_from_this<AsioEvents> {
 public:
  AsioEvents(asio::io_context& io, redisAsyncContext* ac) : ac_(ac), fd_(io, ac->c.fd), io_(io) {}

  // Keeps the adapter alive until hiredis calls cleanup (pending handlers hold their own refs).
  void adopt(std::shared_ptr<AsioEvents> self) { self_ = std::move(self); }

  static AsioEvents* from(void* privdata) { return static_cast<AsioEvents*>(privdata); }

  void addRead() {
    reading_ = true;
    armRead();
  }
  void delRead() { reading_ = false; }
  void addWrite() {
    writing_ = true;
    armWrite();
  }
  void delWrite() { writing_ = false; }

  void cleanup() {
    reading_ = false;
    writing_ = false;
    if (ac_ != nullptr) {
      ac_->ev.data = nullptr;
    }
    ac_ = nullptr;
    // release() cancels our waits and hands the fd back: hiredis closes it in redisFree().
    if (fd_.is_open()) {
      fd_.release();
    }
    auto keep = std::move(self_);  // may be the last reference; `this` dies with `keep`
  }

 private:
  bool bytesAvailable() const {
    int n = 0;
    return ac_ != nullptr && ::ioctl(ac_->c.fd, FIONREAD, &n) == 0 && n > 0;
  }

  void armRead() {
    if (read_armed_ || ac_ == nullptr) {
      return;
    }
    read_armed_ = true;
    if (bytesAvailable()) {
      asio::post(io_, [self = shared_from_this()] { self->onReadable({}); });
      return;
    }
    fd_.async_wait(
        asio::posix::descriptor_base::wait_read,
        [self = shared_from_this()](boost::system::error_code ec) { self->onReadable(ec); });
  }

  void armWrite() {
    if (write_armed_ || ac_ == nullptr) {
      return;
    }
    write_armed_ = true;
    fd_.async_wait(
        asio::posix::descriptor_base::wait_write,
        [self = shared_from_this()](boost::system::error_code ec) { self->onWritable(ec); });
  }

  void onReadable(boost::system::error_code ec) {
    read_armed_ = false;
    if (ec || ac_ == nullptr || !reading_) {
      return;
    }
    int reads = 0;
    do {
      redisAsyncHandleRead(ac_);  // may free the context: cleanup() nulls ac_
    } while (ac_ != nullptr && reading_ && ++reads < kMaxReadsPerWakeup && bytesAvailable());
    if (ac_ != nullptr && reading_) {
      armRead();
    }
  }

  void onWritable(boost::system::error_code ec) {
    write_armed_ = false;
    if (ec || ac_ == nullptr || !writing_) {
      return;
    }
    redisAsyncHandleWrite(ac_);  // connects, flushes; may free the context
    if (ac_ != nullptr && writing_) {
      armWrite();
    }
  }

  redisAsyncContext* ac_;
  asio::posix::stream_descriptor fd_;
  asio::io_context& io_;
  std::shared_ptr<AsioEvents> self_;
  bool reading_ = false;
  bool writing_ = false;
  bool read_armed_ = false;
  bool write_armed_ = false;
};

void addRead(void* p) { AsioEvents::from(p)->addRead(); }
void delRead(void* p) { AsioEvents::from(p)->delRead(); }
void addWrite(void* p) { AsioEvents::from(p)->addWrite(); }
void delWrite(void* p) { AsioEvents::from(p)->delWrite(); }
void cleanup(void* p) { AsioEvents::from(p)->cleanup(); }

}  // namespace

bool attachAsio(asio::io_context& io, redisAsyncContext* ac) {
  if (ac->ev.data != nullptr) {
    return false;
  }
  auto events = std::make_shared<AsioEvents>(io, ac);
  events->adopt(events);
  ac->ev.addRead = addRead;
  ac->ev.delRead = delRead;
  ac->ev.addWrite = addWrite;
  ac->ev.delWrite = delWrite;
  ac->ev.cleanup = cleanup;
  ac->ev.data = events.get();
  return true;
}

}  // namespace pushhub::registry
