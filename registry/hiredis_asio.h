#pragma once
// Glue between hiredis' async API and Boost.Asio, in the shape of hiredis/adapters/libev.h:
// hiredis' read/write interest hooks become async_wait()s on a posix::stream_descriptor wrapping
// the connection's fd. hiredis keeps owning the fd: the descriptor is release()d, never closed.
//
// Threading: the attached context is driven only from the thread running `io`.

#include <boost/asio/io_context.hpp>

struct redisAsyncContext;

namespace pushhub::registry {

// Fills ac->ev (addRead/delRead/addWrite/delWrite/cleanup). Call right after
// redisAsyncConnect succeeded and before redisAsyncSetConnectCallback (which asks for the first
// write event). Returns false when `ac` already has an adapter. The adapter frees itself in the
// cleanup hook hiredis calls when the context is freed.
bool attachAsio(boost::asio::io_context& io, redisAsyncContext* ac);

}  // namespace pushhub::registry
