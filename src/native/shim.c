/*
 * ike-node's native socket shim (Node-API, plain C). It opens descriptors the Node runtime cannot
 * (AF_NETLINK, AF_KEY, a TUN device), moves bytes through them and reports readiness on the event
 * loop. It builds and parses no message: every netlink, PF_KEY and ESP byte is TypeScript's job.
 * The surface is described, function by function, in src/native/types.ts (the `Native` interface).
 *
 * Errors are thrown as JS Error objects with `code` (the errno name, "EAFNOSUPPORT"), `errno` (the
 * positive errno value) and `syscall` ("socket(AF_KEY)").
 *
 * Watching: one uv_poll_t per watched descriptor. On readable it reads until EAGAIN or a batch of
 * WATCH_BATCH datagrams and hands them to JS as one array of Buffers. libuv stops a poll handle by
 * itself when the descriptor reports POLLERR (which a netlink socket does after ENOBUFS): the shim
 * then reads the pending error, reports it and starts the poll again. A descriptor whose error
 * reading does not clear (a TUN device whose interface was deleted), or that keeps failing
 * without delivering anything, is reported once more ("... no longer watched") and left
 * unwatched instead of spinning the event loop; close() is still the caller's.
 *
 * watchBatch is the same watch with one JS call and one buffer per wakeup instead of one Buffer
 * per datagram: up to WATCH_BATCH reads or BATCH_BYTES (recvmmsg(2) on a socket, read(2) after
 * read(2) otherwise) are copied back to back into a single Buffer behind a table of fixed-size
 * records (offset, length, and for an IP socket the source address and port; BATCH_RECORD below).
 * A read that the kernel coalesced (UDP GRO, when the caller turned UDP_GRO on) is handed over as
 * the datagrams it was made of, cut at the segment size the kernel reports. It reads through a
 * duplicate of the descriptor (dup), so that a descriptor the runtime polls too (a node:dgram
 * socket whose reading the caller stopped, but which libuv still polls for writes) has an epoll
 * registration of its own; unwatch and close close the duplicate.
 */
#define _GNU_SOURCE
#ifndef NAPI_VERSION
#define NAPI_VERSION 8
#endif

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#ifdef __linux__
#include <linux/if_tun.h>
#include <linux/netlink.h>
#endif

#include <node_api.h>
#include <uv.h>

#ifndef PF_KEY_V2
#define PF_KEY_V2 2 /* RFC 2367, <net/pfkeyv2.h> */
#endif
#ifndef SOL_NETLINK
#define SOL_NETLINK 270 /* linux/socket.h */
#endif

/* Largest datagram read in one go: a netlink dump part or a TUN packet fits comfortably. */
#define READ_BUFFER_SIZE 65536
/* Datagrams handed to JS per wakeup. */
#define WATCH_BATCH 64
/* Consecutive wakeups that deliver nothing and fail before a watch gives up. */
#define WATCH_MAX_FRUITLESS 64
/*
 * watchBatch: each datagram's record at the start of the batch, BATCH_RECORD bytes, int32 fields
 * in host byte order: [0] offset of the datagram in the batch, [1] its length, [2] the source's
 * address family (4, 6, or 0: not an IP socket), [3] source port, [4] IPv6 scope id; bytes 32-47
 * the source address as in the sockaddr (IPv4: the first 4); bytes 48-111 the address as text,
 * NUL-terminated, as Node formats rinfo.address (inet_ntop, and %interface for a link-local IPv6
 * address with a scope). The datagrams follow the records, back to back.
 */
#define BATCH_RECORD 112
/* A watchBatch slot: any datagram, or a TUN packet of up to 64 KiB (a TCP super-packet when the
 * device has offloads) behind its virtio_net_hdr. */
#define BATCH_SLOT_SIZE (65536 + 256)
/* watchBatch stops reading once a wakeup brought this many bytes (a TUN device with offloads
 * reads up to 64 KiB at a time), so that one wakeup's work stays short. */
#define BATCH_BYTES (256 * 1024)
#define BATCH_ADDRESS 32
#define BATCH_TEXT 48
#define BATCH_TEXT_SIZE 64

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_GRO
#define UDP_GRO 104 /* linux/udp.h */
#endif
/* Room for the one control message watchBatch looks for: UDP_GRO's segment size (an int). */
typedef union {
  char buffer[CMSG_SPACE(sizeof(int))];
  struct cmsghdr align;
} udp_gro_control;

/* ------------------------------------------------------------------------------------------- */
/* Per-environment state (one per main thread or worker that loads the addon)                 */

typedef struct watcher watcher;
typedef struct env_state env_state;

struct watcher {
  uv_poll_t poll;
  env_state *state;
  napi_env env;
  int fd;
  bool is_socket;
  bool closing;         /* uv_close requested: ignore every event from now on */
  bool js_released;     /* references and async context released */
  bool batch;           /* watchBatch: one Buffer per wakeup, read through read_fd */
  int read_fd;          /* the descriptor read: fd, or (batch) a duplicate of it */
  int fruitless;        /* consecutive failing wakeups that delivered nothing */
  napi_ref on_data;
  napi_ref on_error;
  napi_async_context context;
  watcher *next;
};

struct env_state {
  napi_env env;
  uv_loop_t *loop;
  watcher *watchers;
  /* Descriptors this environment opened and has not closed: closed at teardown. */
  int *owned;
  size_t owned_count;
  size_t owned_capacity;
  uint8_t *scratch; /* READ_BUFFER_SIZE bytes for reads */
  /* watchBatch: WATCH_BATCH slots of BATCH_SLOT_SIZE bytes (allocated on first use; the kernel
   * writes only the bytes of each datagram, so only those pages are ever touched), with a
   * message header and a source address per slot. */
  uint8_t *batch_slots;
  struct mmsghdr *batch_messages;
  struct iovec *batch_iov;
  struct sockaddr_storage *batch_sources;
  udp_gro_control *batch_controls;
  size_t refs;      /* 1 for the instance data + 1 per watcher whose uv handle is not closed yet */
  napi_async_cleanup_hook_handle cleanup_hook;
  bool tearing_down;
};

static void state_release(env_state *state) {
  if (--state->refs > 0) return;
  free(state->owned);
  free(state->scratch);
  free(state->batch_slots);
  free(state->batch_messages);
  free(state->batch_iov);
  free(state->batch_sources);
  free(state->batch_controls);
  free(state);
}

static void owned_add(env_state *state, int fd) {
  if (state->owned_count == state->owned_capacity) {
    size_t capacity = state->owned_capacity ? state->owned_capacity * 2 : 16;
    int *grown = realloc(state->owned, capacity * sizeof(int));
    if (grown == NULL) return; /* only teardown bookkeeping is lost */
    state->owned = grown;
    state->owned_capacity = capacity;
  }
  state->owned[state->owned_count++] = fd;
}

static void owned_remove(env_state *state, int fd) {
  for (size_t i = 0; i < state->owned_count; i++) {
    if (state->owned[i] == fd) {
      state->owned[i] = state->owned[--state->owned_count];
      return;
    }
  }
}

/* ------------------------------------------------------------------------------------------- */
/* Errors                                                                                      */

static const char *errno_name(int err) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  const char *name = strerrorname_np(err);
  if (name != NULL) return name;
#endif
  switch (err) {
  case EPERM: return "EPERM";
  case ENOENT: return "ENOENT";
  case ESRCH: return "ESRCH";
  case EINTR: return "EINTR";
  case EIO: return "EIO";
  case ENXIO: return "ENXIO";
  case EBADF: return "EBADF";
  case EAGAIN: return "EAGAIN";
  case ENOMEM: return "ENOMEM";
  case EACCES: return "EACCES";
  case EFAULT: return "EFAULT";
  case EBUSY: return "EBUSY";
  case EEXIST: return "EEXIST";
  case ENODEV: return "ENODEV";
  case EINVAL: return "EINVAL";
  case ENFILE: return "ENFILE";
  case EMFILE: return "EMFILE";
  case ENOSPC: return "ENOSPC";
  case EPIPE: return "EPIPE";
  case ERANGE: return "ERANGE";
  case ENOSYS: return "ENOSYS";
  case ENOTSOCK: return "ENOTSOCK";
  case EDESTADDRREQ: return "EDESTADDRREQ";
  case EMSGSIZE: return "EMSGSIZE";
  case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
  case EOPNOTSUPP: return "EOPNOTSUPP";
  case EAFNOSUPPORT: return "EAFNOSUPPORT";
  case EADDRINUSE: return "EADDRINUSE";
  case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
  case ENETDOWN: return "ENETDOWN";
  case ENETUNREACH: return "ENETUNREACH";
  case ENOBUFS: return "ENOBUFS";
  case ECONNREFUSED: return "ECONNREFUSED";
  case EHOSTUNREACH: return "EHOSTUNREACH";
  case ETIMEDOUT: return "ETIMEDOUT";
  default: return "EUNKNOWN";
  }
}

/* An Error with code, errno and syscall, like Node's own system errors; `note` is appended. */
static napi_value system_error_note(napi_env env, int err, const char *syscall, const char *note) {
  char text[320];
  snprintf(text, sizeof text, "%s failed: %s (%s)%s", syscall, strerror(err), errno_name(err), note);
  napi_value message, code, error, number, call;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &message);
  napi_create_string_utf8(env, errno_name(err), NAPI_AUTO_LENGTH, &code);
  napi_create_error(env, code, message, &error);
  napi_create_int32(env, err, &number);
  napi_create_string_utf8(env, syscall, NAPI_AUTO_LENGTH, &call);
  napi_set_named_property(env, error, "code", code);
  napi_set_named_property(env, error, "errno", number);
  napi_set_named_property(env, error, "syscall", call);
  return error;
}

static napi_value system_error(napi_env env, int err, const char *syscall) {
  return system_error_note(env, err, syscall, "");
}

static napi_value throw_system(napi_env env, int err, const char *syscall) {
  napi_throw(env, system_error(env, err, syscall));
  return NULL;
}

static napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message);
  return NULL;
}

/* A failed Node-API call: an exception is usually pending already; if not, say which call. */
#define NAPI_OK(env, call)                                                                         \
  do {                                                                                             \
    if ((call) != napi_ok) {                                                                       \
      bool pending_ = false;                                                                       \
      napi_is_exception_pending((env), &pending_);                                                 \
      if (!pending_) napi_throw_error((env), NULL, "Node-API call failed: " #call);                \
      return NULL;                                                                                 \
    }                                                                                              \
  } while (0)

/* ------------------------------------------------------------------------------------------- */
/* Argument helpers                                                                            */

static env_state *get_state(napi_env env) {
  void *data = NULL;
  napi_get_instance_data(env, &data);
  return data;
}

static bool arg_int(napi_env env, napi_value value, const char *what, int32_t *out) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_number) {
    char text[128];
    snprintf(text, sizeof text, "%s must be a number", what);
    throw_type(env, text);
    return false;
  }
  napi_get_value_int32(env, value, out);
  return true;
}

static bool arg_bytes(napi_env env, napi_value value, const char *what, uint8_t **data, size_t *length) {
  bool is_typed = false;
  napi_is_typedarray(env, value, &is_typed);
  if (is_typed) {
    napi_typedarray_type type;
    size_t count;
    void *base;
    napi_get_typedarray_info(env, value, &type, &count, &base, NULL, NULL);
    if (type == napi_uint8_array || type == napi_uint8_clamped_array || type == napi_int8_array) {
      *data = base;
      *length = count;
      return true;
    }
  }
  char text[128];
  snprintf(text, sizeof text, "%s must be a Uint8Array or Buffer", what);
  throw_type(env, text);
  return false;
}

static bool arg_function(napi_env env, napi_value value, const char *what) {
  napi_valuetype type;
  if (napi_typeof(env, value, &type) != napi_ok || type != napi_function) {
    char text[128];
    snprintf(text, sizeof text, "%s must be a function", what);
    throw_type(env, text);
    return false;
  }
  return true;
}

static napi_value undefined(napi_env env) {
  napi_value value;
  napi_get_undefined(env, &value);
  return value;
}

static bool fd_is_socket(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/*
 * One datagram into `buffer`: its length, or -1 with errno set. On a socket a datagram longer than
 * the buffer is an EMSGSIZE error (MSG_TRUNC gives the real length) rather than silently cut.
 */
static ssize_t read_one(int fd, bool is_socket, uint8_t *buffer) {
  ssize_t n;
  do {
    n = is_socket ? recv(fd, buffer, READ_BUFFER_SIZE, MSG_TRUNC) : read(fd, buffer, READ_BUFFER_SIZE);
  } while (n < 0 && errno == EINTR);
  if (n > READ_BUFFER_SIZE) {
    errno = EMSGSIZE;
    return -1;
  }
  return n;
}

/* ------------------------------------------------------------------------------------------- */
/* Opening descriptors                                                                         */

/* openNetlink(protocol: number, groups: number[]): number */
static napi_value open_netlink(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "openNetlink(protocol, groups)");
  int32_t protocol;
  if (!arg_int(env, argv[0], "protocol", &protocol)) return NULL;
  bool is_array = false;
  napi_is_array(env, argv[1], &is_array);
  if (!is_array) return throw_type(env, "groups must be an array of numbers");
  uint32_t count;
  NAPI_OK(env, napi_get_array_length(env, argv[1], &count));
#ifdef __linux__
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, protocol);
  if (fd < 0) return throw_system(env, errno, "socket(AF_NETLINK)");
  struct sockaddr_nl address;
  memset(&address, 0, sizeof address);
  address.nl_family = AF_NETLINK;
  if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) {
    int err = errno;
    close(fd);
    return throw_system(env, err, "bind(AF_NETLINK)");
  }
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    int32_t group;
    if (napi_get_element(env, argv[1], i, &element) != napi_ok || !arg_int(env, element, "group", &group)) {
      close(fd);
      return NULL;
    }
    if (setsockopt(fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, &group, sizeof group) < 0) {
      int err = errno;
      close(fd);
      return throw_system(env, err, "setsockopt(NETLINK_ADD_MEMBERSHIP)");
    }
  }
  owned_add(get_state(env), fd);
  napi_value result;
  NAPI_OK(env, napi_create_int32(env, fd, &result));
  return result;
#else
  (void)protocol;
  return throw_system(env, EAFNOSUPPORT, "socket(AF_NETLINK)");
#endif
}

/* openPfkey(): number */
static napi_value open_pfkey(napi_env env, napi_callback_info info) {
  (void)info;
#ifdef PF_KEY
  int fd = socket(PF_KEY, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, PF_KEY_V2);
  if (fd < 0) return throw_system(env, errno, "socket(AF_KEY)");
  owned_add(get_state(env), fd);
  napi_value result;
  NAPI_OK(env, napi_create_int32(env, fd, &result));
  return result;
#else
  return throw_system(env, EAFNOSUPPORT, "socket(AF_KEY)");
#endif
}

/* openTun(name: string, options?: { vnetHeader?: boolean, offload?: number }): { fd, name, offload } */
static napi_value open_tun(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  napi_valuetype type = napi_undefined;
  if (argc >= 1) napi_typeof(env, argv[0], &type);
  if (type != napi_string) return throw_type(env, "name must be a string ('' lets the kernel choose)");
  bool vnet_header = false;
  uint32_t offload = 0;
  napi_valuetype options_type = napi_undefined;
  if (argc >= 2) napi_typeof(env, argv[1], &options_type);
  if (options_type == napi_object) {
    bool has = false;
    napi_value value;
    if (napi_has_named_property(env, argv[1], "vnetHeader", &has) == napi_ok && has &&
        napi_get_named_property(env, argv[1], "vnetHeader", &value) == napi_ok)
      napi_get_value_bool(env, value, &vnet_header);
    has = false;
    if (napi_has_named_property(env, argv[1], "offload", &has) == napi_ok && has &&
        napi_get_named_property(env, argv[1], "offload", &value) == napi_ok)
      napi_get_value_uint32(env, value, &offload);
  } else if (options_type != napi_undefined) {
    return throw_type(env, "options must be an object");
  }
  char name[IFNAMSIZ + 1];
  size_t length;
  NAPI_OK(env, napi_get_value_string_utf8(env, argv[0], name, sizeof name, &length));
  if (length >= IFNAMSIZ) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "an interface name has at most 15 bytes");
    return NULL;
  }
#ifdef __linux__
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return throw_system(env, errno, "open(/dev/net/tun)");
  struct ifreq request;
  memset(&request, 0, sizeof request);
  /* IFF_VNET_HDR: every packet read or written is preceded by a struct virtio_net_hdr (10 bytes),
   * through which userspace may write TCP super-packets for the kernel to take whole (GRO). */
  request.ifr_flags = IFF_TUN | IFF_NO_PI | (vnet_header ? IFF_VNET_HDR : 0);
  memcpy(request.ifr_name, name, length);
  if (ioctl(fd, TUNSETIFF, &request) < 0) {
    int err = errno;
    close(fd);
    return throw_system(env, err, "ioctl(TUNSETIFF)");
  }
  /* TUNSETOFFLOAD (with the virtio_net_hdr only): what the kernel may leave to us in the packets
   * we read, TUN_F_CSUM (checksums) and TUN_F_TSO4/6 (TCP super-packets). A kernel that refuses
   * it keeps doing both itself: the device opens without offloads (`offload` 0 in the result). */
  if (!vnet_header || offload == 0 || ioctl(fd, TUNSETOFFLOAD, (unsigned long)offload) < 0) offload = 0;
  owned_add(get_state(env), fd);
  napi_value result, fd_value, name_value, offload_value;
  NAPI_OK(env, napi_create_object(env, &result));
  NAPI_OK(env, napi_create_int32(env, fd, &fd_value));
  request.ifr_name[IFNAMSIZ - 1] = '\0';
  NAPI_OK(env, napi_create_string_utf8(env, request.ifr_name, NAPI_AUTO_LENGTH, &name_value));
  NAPI_OK(env, napi_create_uint32(env, offload, &offload_value));
  NAPI_OK(env, napi_set_named_property(env, result, "fd", fd_value));
  NAPI_OK(env, napi_set_named_property(env, result, "name", name_value));
  NAPI_OK(env, napi_set_named_property(env, result, "offload", offload_value));
  return result;
#else
  return throw_system(env, ENOSYS, "open(/dev/net/tun)");
#endif
}

/* ------------------------------------------------------------------------------------------- */
/* Moving bytes                                                                                */

/* setsockopt(fd, level, name, value: Uint8Array): void */
static napi_value set_sockopt(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return throw_type(env, "setsockopt(fd, level, name, value)");
  int32_t fd, level, name;
  uint8_t *data;
  size_t length;
  if (!arg_int(env, argv[0], "fd", &fd) || !arg_int(env, argv[1], "level", &level) ||
      !arg_int(env, argv[2], "name", &name) || !arg_bytes(env, argv[3], "value", &data, &length))
    return NULL;
  if (setsockopt(fd, level, name, data, (socklen_t)length) < 0) {
    char call[64];
    snprintf(call, sizeof call, "setsockopt(%d, %d)", level, name);
    return throw_system(env, errno, call);
  }
  return undefined(env);
}

/* write(fd, data: Uint8Array): void */
static napi_value write_fd(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "write(fd, data)");
  int32_t fd;
  uint8_t *data;
  size_t length;
  if (!arg_int(env, argv[0], "fd", &fd) || !arg_bytes(env, argv[1], "data", &data, &length)) return NULL;
  ssize_t n;
  do {
    n = write(fd, data, length);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return throw_system(env, errno, "write");
  if ((size_t)n != length) return throw_system(env, EMSGSIZE, "write (short)");
  return undefined(env);
}

/* The most buffers one packet of writeMany gathers. */
#define WRITE_MANY_MAX_PARTS 8

/*
 * writeMany(fd, buffers: Uint8Array[], perPacket = 1): number. Packets into a TUN device, one
 * write(2) (writev(2) of `perPacket` consecutive buffers: a header and a packet) per packet, all in
 * one call from JS. A packet the kernel refuses is skipped; EAGAIN (the queue is full) ends the
 * batch. Returns how many packets the kernel took; throws only when not one was taken and the
 * first failed with an error other than EAGAIN.
 */
static napi_value write_many(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "writeMany(fd, buffers, perPacket)");
  int32_t fd, per_packet = 1;
  if (!arg_int(env, argv[0], "fd", &fd)) return NULL;
  if (argc >= 3 && !arg_int(env, argv[2], "perPacket", &per_packet)) return NULL;
  if (per_packet < 1 || per_packet > WRITE_MANY_MAX_PARTS) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "perPacket must be 1 to 8");
    return NULL;
  }
  bool is_array = false;
  napi_is_array(env, argv[1], &is_array);
  if (!is_array) return throw_type(env, "buffers must be an array of Uint8Array");
  uint32_t count;
  NAPI_OK(env, napi_get_array_length(env, argv[1], &count));
  if (count % (uint32_t)per_packet != 0) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "buffers must hold perPacket buffers per packet");
    return NULL;
  }
  uint32_t written = 0;
  int first_error = 0;
  for (uint32_t i = 0; i < count; i += (uint32_t)per_packet) {
    struct iovec parts[WRITE_MANY_MAX_PARTS];
    for (int32_t j = 0; j < per_packet; j++) {
      napi_value element;
      uint8_t *data;
      size_t length;
      if (napi_get_element(env, argv[1], i + (uint32_t)j, &element) != napi_ok ||
          !arg_bytes(env, element, "each buffer", &data, &length))
        return NULL;
      parts[j].iov_base = data;
      parts[j].iov_len = length;
    }
    ssize_t n;
    do {
      n = writev(fd, parts, per_packet);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) {
      written++;
      continue;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) break;
    if (first_error == 0) first_error = errno;
  }
  if (written == 0 && first_error != 0) return throw_system(env, first_error, "writev");
  napi_value result;
  NAPI_OK(env, napi_create_uint32(env, written, &result));
  return result;
}

/* The destination of sendTo: IPv4 or IPv6 (with an optional %zone). */
static bool parse_destination(const char *text, int port, struct sockaddr_storage *out, socklen_t *length) {
  memset(out, 0, sizeof *out);
  struct sockaddr_in *v4 = (struct sockaddr_in *)out;
  if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    *length = sizeof *v4;
    return true;
  }
  char copy[INET6_ADDRSTRLEN + IFNAMSIZ + 2];
  if (strlen(text) >= sizeof copy) return false;
  strcpy(copy, text);
  char *zone = strchr(copy, '%');
  if (zone != NULL) *zone++ = '\0';
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
  if (inet_pton(AF_INET6, copy, &v6->sin6_addr) != 1) return false;
  v6->sin6_family = AF_INET6;
  v6->sin6_port = htons((uint16_t)port);
  if (zone != NULL) {
    char *end;
    unsigned long index = strtoul(zone, &end, 10);
    v6->sin6_scope_id = (*zone != '\0' && *end == '\0') ? (uint32_t)index : if_nametoindex(zone);
    if (v6->sin6_scope_id == 0) return false;
  }
  *length = sizeof *v6;
  return true;
}

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103 /* linux/udp.h */
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
/* Most datagrams and bytes in one UDP GSO send (the kernel's UDP_MAX_SEGMENTS and IP's limit). */
#define SEGMENT_MAX_COUNT 64
#define SEGMENT_MAX_BYTES 65000

typedef union {
  char buffer[CMSG_SPACE(sizeof(uint16_t))];
  struct cmsghdr align;
} udp_segment_control;

/* Cleared when the kernel says it cannot segment UDP for us (EIO): plain sendmmsg from then on. */
static bool udp_segment_usable = true;

/*
 * The sendmmsg messages for `count` datagrams: with `segment`, each run of datagrams of the same
 * size (the last of a run may be shorter) is one message with UDP_SEGMENT (UDP GSO, Linux 4.18):
 * one pass through the stack for the whole run, cut into the same datagrams at the device, or at
 * the receiving socket when that is local. Stops at 1024 messages (UIO_MAXIOV). per_message[i]
 * says how many datagrams message i carries; returns the number of messages.
 */
static unsigned int build_messages(struct iovec *iov, uint32_t count, struct sockaddr_storage *destination,
                                   socklen_t destination_length, bool segment, struct mmsghdr *messages,
                                   udp_segment_control *controls, uint32_t *per_message) {
  unsigned int built = 0;
  for (uint32_t i = 0; i < count && built < 1024; built++) {
    uint32_t run = 1;
    size_t size = iov[i].iov_len, bytes = size;
    if (segment && size > 0) {
      while (i + run < count && run < SEGMENT_MAX_COUNT && iov[i + run].iov_len <= size &&
             bytes + iov[i + run].iov_len <= SEGMENT_MAX_BYTES) {
        bytes += iov[i + run].iov_len;
        run++;
        if (iov[i + run - 1].iov_len < size) break; /* a shorter datagram ends the run */
      }
    }
    struct msghdr *header = &messages[built].msg_hdr;
    memset(header, 0, sizeof *header);
    header->msg_name = destination;
    header->msg_namelen = destination_length;
    header->msg_iov = &iov[i];
    header->msg_iovlen = run;
    if (run > 1) {
      header->msg_control = controls[built].buffer;
      header->msg_controllen = sizeof controls[built].buffer;
      struct cmsghdr *control = CMSG_FIRSTHDR(header);
      control->cmsg_level = SOL_UDP;
      control->cmsg_type = UDP_SEGMENT;
      control->cmsg_len = CMSG_LEN(sizeof(uint16_t));
      uint16_t gso_size = (uint16_t)size;
      memcpy(CMSG_DATA(control), &gso_size, sizeof gso_size);
    }
    per_message[built] = run;
    i += run;
  }
  return built;
}

/* sendTo(fd, address, port, datagrams: Uint8Array[]): number */
static napi_value send_to(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 4) return throw_type(env, "sendTo(fd, address, port, datagrams)");
  int32_t fd, port;
  if (!arg_int(env, argv[0], "fd", &fd) || !arg_int(env, argv[2], "port", &port)) return NULL;
  if (port < 0 || port > 65535) {
    napi_throw_range_error(env, "ERR_OUT_OF_RANGE", "port must be 0 to 65535");
    return NULL;
  }
  char text[INET6_ADDRSTRLEN + IFNAMSIZ + 2];
  size_t text_length;
  napi_valuetype type;
  napi_typeof(env, argv[1], &type);
  if (type != napi_string) return throw_type(env, "address must be a string");
  NAPI_OK(env, napi_get_value_string_utf8(env, argv[1], text, sizeof text, &text_length));
  struct sockaddr_storage destination;
  socklen_t destination_length;
  if (!parse_destination(text, port, &destination, &destination_length)) {
    char message[128];
    snprintf(message, sizeof message, "'%s' is not an IPv4 or IPv6 address", text);
    napi_throw_type_error(env, "ERR_INVALID_ARG_VALUE", message);
    return NULL;
  }
  bool is_array = false;
  napi_is_array(env, argv[3], &is_array);
  if (!is_array) return throw_type(env, "datagrams must be an array of Uint8Array");
  uint32_t count;
  NAPI_OK(env, napi_get_array_length(env, argv[3], &count));
  napi_value result;
  if (count == 0) {
    NAPI_OK(env, napi_create_uint32(env, 0, &result));
    return result;
  }
  struct iovec *iov = calloc(count, sizeof *iov);
  struct mmsghdr *messages = calloc(count, sizeof *messages);
  udp_segment_control *controls = calloc(count, sizeof *controls);
  uint32_t *per_message = calloc(count, sizeof *per_message);
  if (iov == NULL || messages == NULL || controls == NULL || per_message == NULL) {
    free(iov);
    free(messages);
    free(controls);
    free(per_message);
    return throw_system(env, ENOMEM, "sendmmsg");
  }
  for (uint32_t i = 0; i < count; i++) {
    napi_value element;
    uint8_t *data;
    size_t length;
    if (napi_get_element(env, argv[3], i, &element) != napi_ok ||
        !arg_bytes(env, element, "each datagram", &data, &length)) {
      free(iov);
      free(messages);
      free(controls);
      free(per_message);
      return NULL;
    }
    iov[i].iov_base = data;
    iov[i].iov_len = length;
  }
  uint32_t sent = 0;
  int err = 0;
  bool segment = udp_segment_usable;
  while (sent < count) {
    unsigned int built = build_messages(iov + sent, count - sent, &destination, destination_length, segment,
                                        messages, controls, per_message);
    int n = sendmmsg(fd, messages, built, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (per_message[0] > 1 && (errno == EIO || errno == EINVAL)) {
        /* EIO: the route's device cannot segment (no checksum offload, or IPsec): never again.
         * EINVAL: this train does not fit the path (larger than its MTU): not in this call. */
        if (errno == EIO) udp_segment_usable = false;
        segment = false;
        continue;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK && sent == 0) err = errno;
      break;
    }
    for (int i = 0; i < n; i++) sent += per_message[i];
  }
  free(iov);
  free(messages);
  free(controls);
  free(per_message);
  if (err != 0) return throw_system(env, err, "sendmmsg");
  NAPI_OK(env, napi_create_uint32(env, sent, &result));
  return result;
}

static double monotonic_ms(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec * 1000.0 + (double)now.tv_nsec / 1e6;
}

/* readSync(fd, timeoutMs): Uint8Array | null; a negative timeout waits for ever. */
static napi_value read_sync(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "readSync(fd, timeoutMs)");
  int32_t fd, timeout;
  if (!arg_int(env, argv[0], "fd", &fd) || !arg_int(env, argv[1], "timeoutMs", &timeout)) return NULL;
  env_state *state = get_state(env);
  bool is_socket = fd_is_socket(fd);
  double deadline = monotonic_ms() + timeout;
  for (;;) {
    int wait = timeout;
    if (timeout >= 0) {
      double left = deadline - monotonic_ms();
      wait = left <= 0 ? 0 : (int)(left + 0.999);
    }
    struct pollfd descriptor = {.fd = fd, .events = POLLIN, .revents = 0};
    int ready = poll(&descriptor, 1, wait);
    if (ready < 0) {
      if (errno == EINTR) continue;
      return throw_system(env, errno, "poll");
    }
    if (ready == 0) {
      napi_value null;
      NAPI_OK(env, napi_get_null(env, &null));
      return null;
    }
    if (descriptor.revents & POLLNVAL) return throw_system(env, EBADF, "poll");
    ssize_t n = read_one(fd, is_socket, state->scratch);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK) continue;
      return throw_system(env, errno, is_socket ? "recv" : "read");
    }
    napi_value result;
    NAPI_OK(env, napi_create_buffer_copy(env, (size_t)n, state->scratch, NULL, &result));
    return result;
  }
}

/* ------------------------------------------------------------------------------------------- */
/* Watching                                                                                    */

static watcher *find_watcher(env_state *state, int fd) {
  for (watcher *w = state->watchers; w != NULL; w = w->next)
    if (w->fd == fd && !w->closing) return w;
  return NULL;
}

static void on_poll_closed(uv_handle_t *handle) {
  watcher *w = handle->data;
  env_state *state = w->state;
  watcher **link = &state->watchers;
  while (*link != NULL && *link != w) link = &(*link)->next;
  if (*link == w) *link = w->next;
  free(w);
  if (state->tearing_down && state->watchers == NULL && state->cleanup_hook != NULL) {
    /* The last watcher of a teardown: the environment may go on. */
    napi_remove_async_cleanup_hook(state->cleanup_hook);
    state->cleanup_hook = NULL;
  }
  state_release(state);
}

/* Releases what the watcher holds in JS (needs a live environment, from a JS call). */
static void release_js(watcher *w) {
  if (w->js_released) return;
  w->js_released = true;
  napi_delete_reference(w->env, w->on_data);
  napi_delete_reference(w->env, w->on_error);
  napi_async_destroy(w->env, w->context);
}

/* Stops the poll (libuv removes the descriptor from epoll at once) and frees the handle later. */
static void stop_watcher(watcher *w) {
  if (w->closing) return;
  w->closing = true;
  uv_poll_stop(&w->poll);
  uv_close((uv_handle_t *)&w->poll, on_poll_closed);
  /* watchBatch's duplicate: out of epoll now (uv_poll_stop), closed at once like close() does. */
  if (w->read_fd != w->fd) close(w->read_fd);
  w->read_fd = -1;
}

/* Calls a watcher's JS callback; an exception it throws becomes an uncaught exception. */
static void call_js_args(watcher *w, napi_ref callback, size_t argc, napi_value *argv) {
  napi_env env = w->env;
  napi_value function, receiver, result;
  if (napi_get_reference_value(env, callback, &function) != napi_ok || function == NULL) return;
  napi_get_global(env, &receiver); /* napi_make_callback wants an object as `this` */
  if (napi_make_callback(env, w->context, receiver, function, argc, argv, &result) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value exception;
      napi_get_and_clear_last_exception(env, &exception);
      napi_fatal_exception(env, exception);
    }
  }
}

static void call_js(watcher *w, napi_ref callback, napi_value argument) {
  call_js_args(w, callback, 1, &argument);
}

/* A watch that cannot go on: released and stopped from inside its own callback. */
static void give_up(watcher *w) {
  if (w->closing) return;
  release_js(w);
  stop_watcher(w);
}

static void report_error_note(watcher *w, int err, const char *syscall, const char *note) {
  if (w->closing) return;
  call_js(w, w->on_error, system_error_note(w->env, err, syscall, note));
}

static void report_error(watcher *w, int err, const char *syscall) {
  report_error_note(w, err, syscall, "");
}

/* Hands the datagrams read so far to JS and starts a new array. */
static void flush(watcher *w, napi_value *batch, uint32_t *count) {
  if (*count == 0) return;
  napi_value array = *batch;
  *count = 0;
  napi_create_array(w->env, batch);
  if (!w->closing) call_js(w, w->on_data, array);
}

/* ------------------------------------------------------------------------------------------- */
/* Batched watching (watchBatch)                                                               */

/* The slots and message headers of watchBatch, allocated on first use. */
static bool batch_buffers(env_state *state) {
  if (state->batch_slots != NULL) return true;
  state->batch_slots = malloc((size_t)WATCH_BATCH * BATCH_SLOT_SIZE);
  state->batch_messages = calloc(WATCH_BATCH, sizeof *state->batch_messages);
  state->batch_iov = calloc(WATCH_BATCH, sizeof *state->batch_iov);
  state->batch_sources = calloc(WATCH_BATCH, sizeof *state->batch_sources);
  state->batch_controls = calloc(WATCH_BATCH, sizeof *state->batch_controls);
  if (state->batch_slots != NULL && state->batch_messages != NULL && state->batch_iov != NULL &&
      state->batch_sources != NULL && state->batch_controls != NULL)
    return true;
  free(state->batch_slots);
  free(state->batch_messages);
  free(state->batch_iov);
  free(state->batch_sources);
  free(state->batch_controls);
  state->batch_slots = NULL;
  state->batch_messages = NULL;
  state->batch_iov = NULL;
  state->batch_sources = NULL;
  state->batch_controls = NULL;
  return false;
}

/* Record bytes 8 to BATCH_RECORD: the source's family, port, scope id, address and its text. */
static void describe_source(const struct sockaddr_storage *source, socklen_t length, uint8_t *record) {
  int32_t fields[3] = {0, 0, 0};
  char *text = (char *)record + BATCH_TEXT;
  memset(record + 8, 0, BATCH_RECORD - 8);
  if (source->ss_family == AF_INET && length >= (socklen_t)sizeof(struct sockaddr_in)) {
    const struct sockaddr_in *v4 = (const struct sockaddr_in *)source;
    fields[0] = 4;
    fields[1] = ntohs(v4->sin_port);
    memcpy(record + BATCH_ADDRESS, &v4->sin_addr, 4);
    inet_ntop(AF_INET, &v4->sin_addr, text, BATCH_TEXT_SIZE);
  } else if (source->ss_family == AF_INET6 && length >= (socklen_t)sizeof(struct sockaddr_in6)) {
    const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)source;
    fields[0] = 6;
    fields[1] = ntohs(v6->sin6_port);
    fields[2] = (int32_t)v6->sin6_scope_id;
    memcpy(record + BATCH_ADDRESS, &v6->sin6_addr, 16);
    inet_ntop(AF_INET6, &v6->sin6_addr, text, BATCH_TEXT_SIZE);
    /* As Node's rinfo.address: a link-local address with a scope gets %interface. */
    if (IN6_IS_ADDR_LINKLOCAL(&v6->sin6_addr) && v6->sin6_scope_id > 0) {
      size_t used = strlen(text);
      char name[IF_NAMESIZE];
      if (if_indextoname(v6->sin6_scope_id, name) != NULL)
        snprintf(text + used, BATCH_TEXT_SIZE - used, "%%%s", name);
      else
        snprintf(text + used, BATCH_TEXT_SIZE - used, "%%%u", (unsigned)v6->sin6_scope_id);
    }
  }
  memcpy(record + 8, fields, sizeof fields);
}

/*
 * Hands the `count` reads in the slots to JS as one batch (see BATCH_RECORD): a read whose length
 * is SIZE_MAX (a datagram cut short) is left out; a read with a segment size (UDP GRO: datagrams
 * of one flow that the kernel coalesced) becomes the datagrams it was made of, each of that size
 * but the last, which may be shorter (udp(7), UDP_GRO). Returns how many datagrams went to JS.
 */
static uint32_t deliver_batch(watcher *w, uint32_t count, const size_t *lengths, const size_t *segments) {
  env_state *state = w->state;
  napi_env env = w->env;
  uint32_t datagrams = 0;
  size_t total = 0;
  for (uint32_t i = 0; i < count; i++) {
    if (lengths[i] == SIZE_MAX) continue;
    size_t segment = segments[i];
    datagrams += segment > 0 && lengths[i] > segment ? (uint32_t)((lengths[i] + segment - 1) / segment) : 1;
    total += lengths[i];
  }
  if (datagrams == 0 || w->closing) return 0;
  size_t records = (size_t)datagrams * BATCH_RECORD;
  void *data;
  napi_value buffer, number;
  if (napi_create_buffer(env, records + total, &data, &buffer) != napi_ok) {
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) {
      napi_value exception;
      napi_get_and_clear_last_exception(env, &exception);
    }
    report_error(w, ENOMEM, "watchBatch");
    return 0;
  }
  uint8_t *out = data;
  size_t offset = records;
  uint8_t *record = out;
  for (uint32_t i = 0; i < count; i++) {
    if (lengths[i] == SIZE_MAX) continue;
    uint8_t *first = record;
    /* The source, once per read: every segment of a coalesced read has the same. */
    if (w->is_socket) {
      const struct sockaddr_storage *source = &state->batch_sources[i];
      socklen_t length = state->batch_messages[i].msg_hdr.msg_namelen;
      /* Most reads of a batch come from the same peer: its record is copied, not redone. */
      if (record != out && length == state->batch_messages[i - 1].msg_hdr.msg_namelen &&
          lengths[i - 1] != SIZE_MAX && memcmp(source, &state->batch_sources[i - 1], length) == 0)
        memcpy(record + 8, record - BATCH_RECORD + 8, BATCH_RECORD - 8);
      else
        describe_source(source, length, record);
    } else {
      memset(record + 8, 0, BATCH_RECORD - 8);
    }
    memcpy(out + offset, state->batch_slots + (size_t)i * BATCH_SLOT_SIZE, lengths[i]);
    size_t left = lengths[i];
    size_t segment = segments[i] > 0 ? segments[i] : left;
    do {
      size_t length = left < segment ? left : segment;
      if (record != first) memcpy(record + 8, first + 8, BATCH_RECORD - 8);
      int32_t place[2] = {(int32_t)offset, (int32_t)length};
      memcpy(record, place, sizeof place);
      record += BATCH_RECORD;
      offset += length;
      left -= length;
    } while (left > 0);
  }
  napi_create_uint32(env, datagrams, &number);
  napi_value argv[2] = {buffer, number};
  call_js_args(w, w->on_data, 2, argv);
  return datagrams;
}

/* The segment size of a read from a UDP socket with UDP_GRO on; 0 when it is one datagram. */
static size_t gro_segment(struct msghdr *header) {
  for (struct cmsghdr *control = CMSG_FIRSTHDR(header); control != NULL; control = CMSG_NXTHDR(header, control)) {
    if (control->cmsg_level == SOL_UDP && control->cmsg_type == UDP_GRO) {
      int size;
      memcpy(&size, CMSG_DATA(control), sizeof size);
      return size > 0 ? (size_t)size : 0;
    }
  }
  return 0;
}

/*
 * watchBatch's reading: up to WATCH_BATCH reads, by recvmmsg on a socket and read otherwise,
 * delivered as one batch (errors as in on_poll: what was read so far, then the error).
 */
static void read_batch(watcher *w, uint32_t *delivered, int *last_error) {
  env_state *state = w->state;
  size_t lengths[WATCH_BATCH];
  size_t segments[WATCH_BATCH];
  uint32_t count = 0;
  size_t bytes = 0;
  const char *syscall = w->is_socket ? "recvmmsg" : "read";
  while (count < WATCH_BATCH && bytes < BATCH_BYTES && !w->closing) {
    int err = 0;
    if (w->is_socket) {
      unsigned int room = WATCH_BATCH - count;
      for (unsigned int i = count; i < WATCH_BATCH; i++) {
        struct msghdr *header = &state->batch_messages[i].msg_hdr;
        memset(header, 0, sizeof *header);
        state->batch_iov[i].iov_base = state->batch_slots + (size_t)i * BATCH_SLOT_SIZE;
        state->batch_iov[i].iov_len = BATCH_SLOT_SIZE;
        header->msg_iov = &state->batch_iov[i];
        header->msg_iovlen = 1;
        header->msg_name = &state->batch_sources[i];
        header->msg_namelen = sizeof state->batch_sources[i];
        header->msg_control = state->batch_controls[i].buffer;
        header->msg_controllen = sizeof state->batch_controls[i].buffer;
      }
      int n;
      do {
        n = recvmmsg(w->read_fd, state->batch_messages + count, room, MSG_DONTWAIT, NULL);
      } while (n < 0 && errno == EINTR);
      if (n > 0) {
        for (int i = 0; i < n; i++) {
          struct mmsghdr *message = &state->batch_messages[count + (unsigned int)i];
          bool cut = (message->msg_hdr.msg_flags & MSG_TRUNC) != 0;
          lengths[count + (unsigned int)i] = cut ? SIZE_MAX : message->msg_len;
          segments[count + (unsigned int)i] = message->msg_hdr.msg_controllen > 0 ? gro_segment(&message->msg_hdr) : 0;
          if (cut) err = EMSGSIZE;
          else bytes += message->msg_len;
        }
        count += (unsigned int)n;
        if (err == 0) {
          if ((unsigned int)n < room) break; /* the socket is drained */
          continue;
        }
      } else if (n == 0) {
        break;
      } else {
        err = errno;
      }
    } else {
      ssize_t n;
      do {
        n = read(w->read_fd, state->batch_slots + (size_t)count * BATCH_SLOT_SIZE, BATCH_SLOT_SIZE);
      } while (n < 0 && errno == EINTR);
      if (n >= 0) {
        segments[count] = 0;
        lengths[count++] = (size_t)n;
        bytes += (size_t)n;
        continue;
      }
      err = errno;
    }
    if (err == EAGAIN || err == EWOULDBLOCK) break;
    *last_error = err;
    /* As on_poll: ENOBUFS and EMSGSIZE are events of their own, other errors reported once. */
    bool transient = err == ENOBUFS || err == EMSGSIZE;
    *delivered += deliver_batch(w, count, lengths, segments);
    count = 0;
    bytes = 0;
    if (transient || w->fruitless == 0) report_error(w, err, syscall);
    if (!transient) break;
  }
  *delivered += deliver_batch(w, count, lengths, segments);
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  (void)events;
  watcher *w = handle->data;
  if (w->closing) return;
  env_state *state = w->state;
  napi_env env = w->env;
  napi_handle_scope scope;
  if (napi_open_handle_scope(env, &scope) != napi_ok) return;

  napi_value batch;
  napi_create_array(env, &batch);
  uint32_t count = 0;
  uint32_t delivered = 0;
  int last_error = 0;

  /* libuv stopped the handle on POLLERR (status UV_EBADF): unless the descriptor is really gone,
   * the read below collects the socket's pending error (ENOBUFS) and the poll starts again. */
  bool stopped = status < 0;
  if (stopped && fcntl(w->read_fd, F_GETFD) < 0) {
    report_error_note(w, errno, "poll", "; no longer watched");
    give_up(w);
    napi_close_handle_scope(env, scope);
    return;
  }

  if (w->batch) read_batch(w, &delivered, &last_error);
  for (int i = 0; i < WATCH_BATCH && !w->batch && !w->closing; i++) {
    ssize_t n = read_one(w->read_fd, w->is_socket, state->scratch);
    if (n >= 0) {
      napi_value buffer;
      if (napi_create_buffer_copy(env, (size_t)n, state->scratch, NULL, &buffer) == napi_ok)
        napi_set_element(env, batch, count++, buffer);
      delivered++;
      continue;
    }
    int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) break;
    last_error = err;
    /* ENOBUFS (events were dropped) and EMSGSIZE (one datagram was) are events of their own and
     * leave the rest readable; any other error is reported once, not at every wakeup. */
    bool transient = err == ENOBUFS || err == EMSGSIZE;
    flush(w, &batch, &count);
    if (transient || w->fruitless == 0) report_error(w, err, w->is_socket ? "recv" : "read");
    if (!transient) break;
  }
  flush(w, &batch, &count);

  if (!w->closing) {
    /* Progress: datagrams, or an error that the read cleared (dropped events or datagram). */
    bool progress = delivered > 0 || last_error == ENOBUFS || last_error == EMSGSIZE;
    w->fruitless = progress || last_error == 0 ? 0 : w->fruitless + 1;
    if (stopped && !progress) {
      /* POLLERR that reading does not clear (a TUN device whose interface is gone): polling on
       * would wake up at once for ever. */
      report_error_note(w, last_error != 0 ? last_error : EIO, "poll",
                        "; the descriptor stays in error, so it is no longer watched");
      give_up(w);
    } else if (w->fruitless >= WATCH_MAX_FRUITLESS) {
      report_error_note(w, last_error, w->is_socket ? "recv" : "read",
                        "; the descriptor keeps failing, so it is no longer watched");
      give_up(w);
    } else if (stopped) {
      int rc = uv_poll_start(&w->poll, UV_READABLE, on_poll);
      if (rc < 0) {
        report_error(w, -rc, "uv_poll_start");
        give_up(w);
      }
    }
  }
  napi_close_handle_scope(env, scope);
}

/* watch and watchBatch: (fd, onData, onError): void */
static napi_value start_watch(napi_env env, napi_callback_info info, bool batch) {
  const char *name = batch ? "watchBatch" : "watch";
  size_t argc = 3;
  napi_value argv[3];
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 3) return throw_type(env, batch ? "watchBatch(fd, onBatch, onError)" : "watch(fd, onData, onError)");
  int32_t fd;
  if (!arg_int(env, argv[0], "fd", &fd) || !arg_function(env, argv[1], batch ? "onBatch" : "onData") ||
      !arg_function(env, argv[2], "onError"))
    return NULL;
  env_state *state = get_state(env);
  if (find_watcher(state, fd) != NULL) {
    char call[64];
    snprintf(call, sizeof call, "%s (the descriptor is already watched)", name);
    return throw_system(env, EEXIST, call);
  }
  if (fcntl(fd, F_GETFD) < 0) return throw_system(env, errno, name);
  if (batch && !batch_buffers(state)) return throw_system(env, ENOMEM, name);
  int read_fd = fd;
  if (batch) {
    read_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (read_fd < 0) return throw_system(env, errno, "watchBatch (dup)");
  }
  watcher *w = calloc(1, sizeof *w);
  if (w == NULL) {
    if (read_fd != fd) close(read_fd);
    return throw_system(env, ENOMEM, name);
  }
  w->state = state;
  w->env = env;
  w->fd = fd;
  w->read_fd = read_fd;
  w->batch = batch;
  w->is_socket = fd_is_socket(fd);
  int rc = uv_poll_init(state->loop, &w->poll, read_fd);
  if (rc < 0) {
    if (read_fd != fd) close(read_fd);
    free(w);
    return throw_system(env, -rc, "uv_poll_init");
  }
  w->poll.data = w;
  /* From here on the handle exists: every failure goes through uv_close (on_poll_closed frees). */
  w->next = state->watchers;
  state->watchers = w;
  state->refs++;
  napi_value resource_name;
  napi_status status = napi_create_string_utf8(
      env, batch ? "ike-native:watchBatch" : "ike-native:watch", NAPI_AUTO_LENGTH, &resource_name);
  if (status == napi_ok) status = napi_async_init(env, NULL, resource_name, &w->context);
  if (status == napi_ok) status = napi_create_reference(env, argv[1], 1, &w->on_data);
  if (status == napi_ok) status = napi_create_reference(env, argv[2], 1, &w->on_error);
  if (status != napi_ok) {
    w->js_released = true; /* partially made: the environment frees what was created */
    stop_watcher(w);
    napi_throw_error(env, NULL, batch ? "watchBatch: Node-API failed" : "watch: Node-API failed");
    return NULL;
  }
  rc = uv_poll_start(&w->poll, UV_READABLE, on_poll);
  if (rc < 0) {
    release_js(w);
    stop_watcher(w);
    return throw_system(env, -rc, "uv_poll_start");
  }
  return undefined(env);
}

/* watch(fd, onData, onError): void */
static napi_value watch(napi_env env, napi_callback_info info) {
  return start_watch(env, info, false);
}

/* watchBatch(fd, onBatch, onError): void */
static napi_value watch_batch(napi_env env, napi_callback_info info) {
  return start_watch(env, info, true);
}

static void unwatch_fd(env_state *state, int fd) {
  watcher *w = find_watcher(state, fd);
  if (w == NULL) return;
  release_js(w);
  stop_watcher(w);
}

/* unwatch(fd): void */
static napi_value unwatch(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_type(env, "unwatch(fd)");
  int32_t fd;
  if (!arg_int(env, argv[0], "fd", &fd)) return NULL;
  unwatch_fd(get_state(env), fd);
  return undefined(env);
}

/* close(fd): void: the watch stops (uv_poll_stop takes the descriptor out of epoll) before close(2). */
/*
 * setDumpable(on): prctl(PR_SET_DUMPABLE). Off, the kernel writes no core dump of the process and
 * lets no other process of the same user ptrace it or read its memory (/proc/PID/mem): the keys
 * of live and long-rekeyed SAs stay out of both. dumpable(): prctl(PR_GET_DUMPABLE), 0 or 1 (2 if
 * the system's suid_dumpable says so).
 */
static napi_value set_dumpable(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  bool on;
  if (argc < 1 || napi_get_value_bool(env, argv[0], &on) != napi_ok)
    return throw_type(env, "setDumpable(on): on must be a boolean");
  if (prctl(PR_SET_DUMPABLE, on ? 1 : 0, 0, 0, 0) < 0) return throw_system(env, errno, "prctl");
  return undefined(env);
}

static napi_value get_dumpable(napi_env env, napi_callback_info info) {
  int value = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0);
  if (value < 0) return throw_system(env, errno, "prctl");
  napi_value result;
  NAPI_OK(env, napi_create_int32(env, value, &result));
  return result;
}

static napi_value close_fd(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  NAPI_OK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_type(env, "close(fd)");
  int32_t fd;
  if (!arg_int(env, argv[0], "fd", &fd)) return NULL;
  env_state *state = get_state(env);
  unwatch_fd(state, fd);
  owned_remove(state, fd);
  if (close(fd) < 0 && errno != EINTR) return throw_system(env, errno, "close");
  return undefined(env);
}

/* ------------------------------------------------------------------------------------------- */
/* Environment lifetime                                                                        */

/* Teardown of the environment (a worker ending): stop every watch and close what we opened. */
static void on_env_cleanup(napi_async_cleanup_hook_handle handle, void *arg) {
  env_state *state = arg;
  state->cleanup_hook = handle;
  state->tearing_down = true;
  bool waiting = false;
  for (watcher *w = state->watchers; w != NULL; w = w->next) {
    if (!w->closing) {
      w->js_released = true; /* the environment releases references and contexts itself */
      stop_watcher(w);
    }
    waiting = true;
  }
  for (size_t i = 0; i < state->owned_count; i++) close(state->owned[i]);
  state->owned_count = 0;
  if (!waiting) {
    napi_remove_async_cleanup_hook(handle);
    state->cleanup_hook = NULL;
  }
}

static void on_instance_finalize(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  state_release(data);
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  env_state *state = calloc(1, sizeof *state);
  if (state == NULL) {
    napi_throw_error(env, NULL, "ike-native: out of memory");
    return NULL;
  }
  state->scratch = malloc(READ_BUFFER_SIZE);
  state->env = env;
  state->refs = 1;
  if (state->scratch == NULL || napi_get_uv_event_loop(env, &state->loop) != napi_ok) {
    free(state->scratch);
    free(state);
    napi_throw_error(env, NULL, "ike-native: cannot get the event loop");
    return NULL;
  }
  if (napi_set_instance_data(env, state, on_instance_finalize, NULL) != napi_ok) {
    free(state->scratch);
    free(state);
    napi_throw_error(env, NULL, "ike-native: cannot set instance data");
    return NULL;
  }
  napi_async_cleanup_hook_handle hook;
  napi_add_async_cleanup_hook(env, on_env_cleanup, state, &hook);

  napi_property_descriptor functions[] = {
      {"openNetlink", NULL, open_netlink, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openPfkey", NULL, open_pfkey, NULL, NULL, NULL, napi_enumerable, NULL},
      {"openTun", NULL, open_tun, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setsockopt", NULL, set_sockopt, NULL, NULL, NULL, napi_enumerable, NULL},
      {"write", NULL, write_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"writeMany", NULL, write_many, NULL, NULL, NULL, napi_enumerable, NULL},
      {"sendTo", NULL, send_to, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readSync", NULL, read_sync, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watch", NULL, watch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"watchBatch", NULL, watch_batch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"unwatch", NULL, unwatch, NULL, NULL, NULL, napi_enumerable, NULL},
      {"close", NULL, close_fd, NULL, NULL, NULL, napi_enumerable, NULL},
      {"setDumpable", NULL, set_dumpable, NULL, NULL, NULL, napi_enumerable, NULL},
      {"dumpable", NULL, get_dumpable, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions) != napi_ok)
    return NULL;
  return exports;
}
