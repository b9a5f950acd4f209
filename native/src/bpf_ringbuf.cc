// ringBufferOpen(mapFd, cb, label): the records of a BPF ring buffer
// (BPF_MAP_TYPE_RINGBUF), read on Node's event loop.
//
// libbpf's ring_buffer keeps an epoll fd that becomes readable when the
// kernel has records for us; a uv_poll watches it, as the netlink monitor
// watches its socket (netlink_monitor.cc), and each wakeup drains what is
// there with ring_buffer__consume(), which never blocks. No thread is
// needed: a worker blocked in ring_buffer__poll() would have to hand every
// batch back to the main thread through a thread-safe function (a copy and a
// wakeup either way), and to be interrupted to close. Each wakeup makes one
// JavaScript call with every record of the batch in one Buffer, each record
// preceded by its length (u32, host order), so a burst costs one call, not
// one per record. The ring's size bounds a batch.
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <uv.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "bpf_util.h"

namespace weft {
using namespace bpfutil;

namespace {

struct RingState {
  explicit RingState(Napi::Env e) : env(e) {}
  Napi::Env env;
  ring_buffer* rb = nullptr;
  uv_poll_t* poll = nullptr;
  Napi::FunctionReference cb;
  std::unique_ptr<Napi::AsyncContext> ctx;
  bool closed = false;
  std::string label;
  std::vector<uint8_t> batch;
  uint32_t records = 0;
};
using StatePtr = std::shared_ptr<RingState>;

int OnSample(void* ctx, void* data, size_t size) {
  auto* st = static_cast<RingState*>(ctx);
  uint32_t len = static_cast<uint32_t>(size);
  const auto* p = reinterpret_cast<const uint8_t*>(&len);
  st->batch.insert(st->batch.end(), p, p + sizeof(len));
  st->batch.insert(st->batch.end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  st->records++;
  return 0;
}

void OnClosed(uv_handle_t* h) {
  auto* holder = static_cast<StatePtr*>(h->data);
  if (holder) {
    if ((*holder)->rb) ring_buffer__free((*holder)->rb);
    (*holder)->rb = nullptr;
    delete holder;
  }
  delete reinterpret_cast<uv_poll_t*>(h);
}

void CloseState(const StatePtr& st) {
  if (st->closed) return;
  st->closed = true;
  uv_poll_stop(st->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(st->poll), OnClosed);
  st->poll = nullptr;
  st->cb.Reset();
  st->ctx.reset();
}

// Drains the ring into st->batch; the records' count, or a negative errno.
int Drain(const StatePtr& st) {
  st->batch.clear();
  st->records = 0;
  int n = ring_buffer__consume(st->rb);
  return n < 0 ? n : static_cast<int>(st->records);
}

// Hands the batch to the callback; what the callback throws propagates.
void Deliver(const StatePtr& st) {
  if (st->records == 0 || st->closed) return;
  Napi::Env env = st->env;
  Napi::HandleScope scope(env);
  Napi::Buffer<uint8_t> buf = Napi::Buffer<uint8_t>::Copy(env, st->batch.data(), st->batch.size());
  Napi::Number count = Napi::Number::New(env, st->records);
  st->cb.MakeCallback(env.Global(), {env.Null(), buf, count}, *st->ctx);
}

void OnReadable(uv_poll_t* h, int status, int events) {
  StatePtr st = *static_cast<StatePtr*>(h->data);
  if (st->closed) return;
  int n = status < 0 ? status : Drain(st);
  if (n < 0) {
    // The ring cannot be read any more (the map went away under us): say so once, and stop.
    Napi::Env env = st->env;
    Napi::HandleScope scope(env);
    Napi::Error err = ErrnoErrorWithDetail(env, "ring_buffer__consume(" + st->label + ")", -n, "");
    try {
      st->cb.MakeCallback(env.Global(), {err.Value()}, *st->ctx);
    } catch (const Napi::Error& e) {
      napi_fatal_exception(env, e.Value());
    }
    CloseState(st);
    return;
  }
  try {
    Deliver(st);
  } catch (const Napi::Error& e) {
    // Nobody up the stack to catch it on a wakeup of the loop: Node's uncaught-exception path.
    napi_fatal_exception(st->env, e.Value());
  }
}

}  // namespace

// ringBufferOpen(mapFd, cb(err, buf, count), label) -> { consume(): number, close() }
static Napi::Value RingBufferOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt(info, 0, "mapFd");
  if (info.Length() < 2 || !info[1].IsFunction()) throw Napi::TypeError::New(env, "ringBufferOpen: cb must be a function");
  std::string label = ArgLabel(info, 2, "map fd " + std::to_string(fd));
  auto st = std::make_shared<RingState>(env);
  st->label = label;
  {
    LogCapture log;
    st->rb = ring_buffer__new(fd, OnSample, st.get(), nullptr);
    if (!st->rb) ThrowErrnoWithLog(env, "ring_buffer__new(" + label + ")", errno ? errno : EINVAL, log, 5);
  }
  st->cb = Napi::Persistent(info[1].As<Napi::Function>());
  st->ctx = std::make_unique<Napi::AsyncContext>(env, "weft.bpf.ringbuf");
  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop) {
    ring_buffer__free(st->rb);
    throw Napi::Error::New(env, "ringBufferOpen: no libuv loop");
  }
  st->poll = new uv_poll_t;
  int rc = uv_poll_init(loop, st->poll, ring_buffer__epoll_fd(st->rb));
  if (rc < 0) {
    delete st->poll;
    ring_buffer__free(st->rb);
    ThrowErrno(env, "uv_poll_init(" + label + ")", -rc);
  }
  st->poll->data = new StatePtr(st);
  rc = uv_poll_start(st->poll, UV_READABLE, OnReadable);
  if (rc < 0) {
    CloseState(st);
    ThrowErrno(env, "uv_poll_start(" + label + ")", -rc);
  }
  Napi::Object r = Napi::Object::New(env);
  // Reads what is there now, synchronously (the same callback gets it); the records' count.
  r.Set("consume", Napi::Function::New(env, [st](const Napi::CallbackInfo& ci) -> Napi::Value {
          if (st->closed) return Napi::Number::New(ci.Env(), 0);
          int n = Drain(st);
          if (n < 0) ThrowErrno(ci.Env(), "ring_buffer__consume(" + st->label + ")", -n);
          Deliver(st);
          return Napi::Number::New(ci.Env(), n);
        }, "consume"));
  r.Set("close", Napi::Function::New(env, [st](const Napi::CallbackInfo& ci) {
          CloseState(st);
          return ci.Env().Undefined();
        }, "close"));
  return r;
}

Napi::Object InitBpfRingbuf(Napi::Env env, Napi::Object exports) {
  exports.Set("ringBufferOpen", Napi::Function::New(env, RingBufferOpen, "ringBufferOpen"));
  return exports;
}

}  // namespace weft
