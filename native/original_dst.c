/*
 * remora_net: the one thing Node cannot do for a transparent proxy — read where a connection that iptables
 * REDIRECTed was really going. getsockopt(SO_ORIGINAL_DST) for IPv4, IP6T_SO_ORIGINAL_DST for IPv6, on the
 * accepted socket's file descriptor. N-API (Node-API version 8), so one build serves every Node >= 12.22.
 *
 *   originalDst(fd: number, ipv6: boolean): { address: string, port: number } | null
 *
 * null: the kernel has no NAT record for the connection (ENOENT: it was not redirected) or the option is not
 * available (ENOPROTOOPT: no conntrack). Any other error throws with the errno text.
 */
#define NAPI_VERSION 8
#include <node_api.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

/* From <linux/netfilter_ipv4.h> and <linux/netfilter_ipv6/ip6_tables.h>; both are 80. Defined here so the build
 * needs no kernel headers beyond libc's. */
#ifndef SO_ORIGINAL_DST
#define SO_ORIGINAL_DST 80
#endif
#ifndef IP6T_SO_ORIGINAL_DST
#define IP6T_SO_ORIGINAL_DST 80
#endif

#define CHECK(env, call)                                                      \
  do {                                                                        \
    if ((call) != napi_ok) {                                                  \
      napi_throw_error((env), "ERR_REMORA_NATIVE", #call " failed");          \
      return NULL;                                                            \
    }                                                                         \
  } while (0)

static napi_value make_result(napi_env env, const char *address, unsigned port) {
  napi_value obj, addr, p;
  CHECK(env, napi_create_object(env, &obj));
  CHECK(env, napi_create_string_utf8(env, address, NAPI_AUTO_LENGTH, &addr));
  CHECK(env, napi_create_uint32(env, port, &p));
  CHECK(env, napi_set_named_property(env, obj, "address", addr));
  CHECK(env, napi_set_named_property(env, obj, "port", p));
  return obj;
}

static napi_value original_dst(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(env, napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "originalDst(fd, ipv6): fd is required");
    return NULL;
  }
  int32_t fd = -1;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, "ERR_INVALID_ARG", "originalDst(fd, ipv6): fd must be a non-negative integer");
    return NULL;
  }
  bool ipv6 = false;
  if (argc >= 2) napi_get_value_bool(env, argv[1], &ipv6);

  char text[INET6_ADDRSTRLEN];
  int rc;
  if (ipv6) {
    struct sockaddr_in6 sa;
    socklen_t len = sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    rc = getsockopt(fd, SOL_IPV6, IP6T_SO_ORIGINAL_DST, &sa, &len);
    if (rc == 0) {
      if (inet_ntop(AF_INET6, &sa.sin6_addr, text, sizeof(text)) == NULL) rc = -1;
      else return make_result(env, text, ntohs(sa.sin6_port));
    }
  } else {
    struct sockaddr_in sa;
    socklen_t len = sizeof(sa);
    memset(&sa, 0, sizeof(sa));
    rc = getsockopt(fd, SOL_IP, SO_ORIGINAL_DST, &sa, &len);
    if (rc == 0) {
      if (inet_ntop(AF_INET, &sa.sin_addr, text, sizeof(text)) == NULL) rc = -1;
      else return make_result(env, text, ntohs(sa.sin_port));
    }
  }
  if (errno == ENOENT || errno == ENOPROTOOPT) {
    napi_value nul;
    CHECK(env, napi_get_null(env, &nul));
    return nul;
  }
  char msg[128];
  snprintf(msg, sizeof(msg), "getsockopt(SO_ORIGINAL_DST): %s", strerror(errno));
  napi_throw_error(env, "ERR_REMORA_ORIGINAL_DST", msg);
  return NULL;
}

/* native/resident.c */
napi_value drop_startup_pages(napi_env env, napi_callback_info info);
/* native/heap.cc */
napi_value reduce_heap(napi_env env, napi_callback_info info);
napi_value malloc_trim_now(napi_env env, napi_callback_info info);

static napi_value init(napi_env env, napi_value exports) {
  napi_value fn, drop, reduce, trim;
  CHECK(env, napi_create_function(env, "originalDst", NAPI_AUTO_LENGTH, original_dst, NULL, &fn));
  CHECK(env, napi_set_named_property(env, exports, "originalDst", fn));
  CHECK(env, napi_create_function(env, "dropStartupPages", NAPI_AUTO_LENGTH, drop_startup_pages, NULL, &drop));
  CHECK(env, napi_set_named_property(env, exports, "dropStartupPages", drop));
  CHECK(env, napi_create_function(env, "reduceHeap", NAPI_AUTO_LENGTH, reduce_heap, NULL, &reduce));
  CHECK(env, napi_set_named_property(env, exports, "reduceHeap", reduce));
  CHECK(env, napi_create_function(env, "mallocTrim", NAPI_AUTO_LENGTH, malloc_trim_now, NULL, &trim));
  CHECK(env, napi_set_named_property(env, exports, "mallocTrim", trim));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
