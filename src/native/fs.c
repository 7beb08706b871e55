/*
 * File-system calls Node lacks, on byte-exact paths (a Uint8Array, not a string: names need not be UTF-8).
 *
 *   listXattrs(path)              -> [[name, value], ...] (Buffers): llistxattr + lgetxattr, a final symlink not
 *                                    followed. Attributes the caller may not read (EACCES, EPERM) and ones removed
 *                                    meanwhile (ENODATA) are left out; a file system without xattrs gives [].
 *   setXattr(path, name, value)   -> undefined: lsetxattr.
 *   nextData(fd, offset)          -> lseek(SEEK_DATA): the next offset holding data, or -1 when only a hole follows.
 *   nextHole(fd, offset)          -> lseek(SEEK_HOLE): the next hole (the end of the file counts as one), or -1.
 *   readFile(...)                 -> a whole small file read in one call (below).
 *
 * Errors are thrown with the errno's name as `code` ("ENOENT", "ENAMETOOLONG", ...).
 */
#define _GNU_SOURCE
#include "native.h"
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/xattr.h>
#include <fcntl.h>
#include <unistd.h>

/* A NUL-terminated copy of a path argument; NULL (with a pending exception) when it is not bytes or holds a NUL. */
static char *get_path(napi_env env, napi_value v, const char *name) {
  uint8_t *data;
  size_t len;
  if (!get_bytes(env, v, name, &data, &len)) return NULL;
  if (len == 0 || memchr(data, 0, len) != NULL) {
    napi_throw_type_error(env, NULL, "a path must be non-empty and hold no NUL byte");
    return NULL;
  }
  char *s = malloc(len + 1);
  if (!s) {
    napi_throw_error(env, "ENOMEM", "out of memory");
    return NULL;
  }
  memcpy(s, data, len);
  s[len] = 0;
  return s;
}

/* Whether an attribute that cannot be read is to be left out rather than failing: gone, or not ours to read. */
static bool skippable(int err) {
  return err == ENODATA || err == EACCES || err == EPERM || err == ENOTSUP;
}

int read_xattr(const char *path, const char *name, char **value, ssize_t *size) {
  *value = NULL;
  for (int attempt = 0; attempt < 8; attempt++) {
    ssize_t n = lgetxattr(path, name, NULL, 0);
    if (n < 0) {
      if (!skippable(errno)) return errno;
      *size = -1;
      return 0;
    }
    char *buf = malloc(n > 0 ? (size_t)n : 1);
    if (!buf) return ENOMEM;
    ssize_t got = n > 0 ? lgetxattr(path, name, buf, (size_t)n) : 0;
    if (got >= 0) {
      *value = buf;
      *size = got;
      return 0;
    }
    int err = errno;
    free(buf);
    if (err == ERANGE) continue; /* it grew between the calls */
    if (!skippable(err)) return err;
    *size = -1;
    return 0;
  }
  return ERANGE;
}

napi_value fs_list_xattrs(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 1) {
    napi_throw_type_error(env, NULL, "listXattrs(path) needs 1 argument");
    return NULL;
  }
  char *path = get_path(env, argv[0], "path");
  if (!path) return NULL;
  napi_value result;
  napi_create_array(env, &result);
  char *names = NULL;
  ssize_t len = 0;
  for (int attempt = 0;; attempt++) {
    len = llistxattr(path, NULL, 0);
    if (len < 0 && (errno == ENOTSUP)) len = 0;
    if (len < 0) {
      throw_errno(env, "llistxattr", errno);
      free(path);
      return NULL;
    }
    if (len == 0) break;
    names = malloc((size_t)len);
    if (!names) {
      free(path);
      napi_throw_error(env, "ENOMEM", "out of memory");
      return NULL;
    }
    ssize_t got = llistxattr(path, names, (size_t)len);
    if (got >= 0) {
      len = got;
      break;
    }
    int err = errno;
    free(names);
    names = NULL;
    if (err != ERANGE || attempt >= 8) {
      throw_errno(env, "llistxattr", err);
      free(path);
      return NULL;
    }
  }
  uint32_t count = 0;
  for (ssize_t at = 0; at < len;) {
    const char *name = names + at;
    size_t nlen = strnlen(name, (size_t)(len - at));
    at += (ssize_t)nlen + 1;
    if (nlen == 0) continue;
    ssize_t vsize;
    char *value;
    int err = read_xattr(path, name, &value, &vsize);
    if (err) {
      throw_errno(env, "lgetxattr", err);
      free(names);
      free(path);
      return NULL;
    }
    if (vsize < 0) continue;
    napi_value pair, nbuf, vbuf;
    napi_create_array_with_length(env, 2, &pair);
    napi_create_buffer_copy(env, nlen, name, NULL, &nbuf);
    napi_create_buffer_copy(env, (size_t)vsize, vsize > 0 ? value : "", NULL, &vbuf);
    free(value);
    napi_set_element(env, pair, 0, nbuf);
    napi_set_element(env, pair, 1, vbuf);
    napi_set_element(env, result, count++, pair);
  }
  free(names);
  free(path);
  return result;
}

napi_value fs_set_xattr(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3) {
    napi_throw_type_error(env, NULL, "setXattr(path, name, value) needs 3 arguments");
    return NULL;
  }
  char *path = get_path(env, argv[0], "path");
  if (!path) return NULL;
  char *name = get_path(env, argv[1], "name");
  if (!name) {
    free(path);
    return NULL;
  }
  uint8_t *value;
  size_t vlen;
  napi_value ret = NULL;
  if (get_bytes(env, argv[2], "value", &value, &vlen)) {
    if (lsetxattr(path, name, vlen ? (const void *)value : "", vlen, 0) != 0) throw_errno(env, "lsetxattr", errno);
    else napi_get_undefined(env, &ret);
  }
  free(name);
  free(path);
  return ret;
}

static napi_value seek(napi_env env, napi_callback_info info, int whence, const char *call) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t fd;
  int64_t offset;
  if (argc < 2 || !get_u32(env, argv[0], "fd", &fd) || !get_i64(env, argv[1], "offset", &offset)) {
    if (argc < 2) napi_throw_type_error(env, NULL, "needs (fd, offset)");
    return NULL;
  }
  off_t r = lseek((int)fd, (off_t)offset, whence);
  if (r < 0) {
    if (errno == ENXIO) return make_number(env, -1);
    return throw_errno(env, call, errno);
  }
  return make_number(env, (double)r);
}

napi_value fs_next_data(napi_env env, napi_callback_info info) {
  return seek(env, info, SEEK_DATA, "lseek(SEEK_DATA)");
}

napi_value fs_next_hole(napi_env env, napi_callback_info info) {
  return seek(env, info, SEEK_HOLE, "lseek(SEEK_HOLE)");
}

/*
 * readFile(paths, start, end, dst, at, length) -> bytes read, or -errno
 *   Opens the file named paths[start, end) (the task's path pool: no string per file), reads it from its start
 *   into dst[at..], up to length + 1 bytes (a result above length means the file grew), and closes it: one call
 *   instead of Node's open, read, read and close for each small file. A read that stops exactly at `length` is taken
 *   as the end of the file (what a short read of a regular file means), which saves the read that would return 0.
 */
napi_value fs_read_file(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  uint8_t *paths, *dst;
  size_t paths_len, dst_len;
  int64_t start, end, at, length;
  if (!get_args(env, info, 6, argv, "readFile needs (paths, start, end, dst, at, length)") ||
      !get_bytes(env, argv[0], "paths", &paths, &paths_len) || !get_i64(env, argv[1], "start", &start) ||
      !get_i64(env, argv[2], "end", &end) || !get_bytes(env, argv[3], "dst", &dst, &dst_len) ||
      !get_i64(env, argv[4], "at", &at) || !get_i64(env, argv[5], "length", &length))
    return NULL;
  if (start < 0 || end <= start || (uint64_t)end > paths_len || at < 0 || length < 0 ||
      (uint64_t)(at + length + 1) > dst_len) {
    napi_throw_range_error(env, NULL, "readFile: range out of bounds");
    return NULL;
  }
  char path[4097];
  int e = terminated_path(paths + start, (size_t)(end - start), path, sizeof path);
  return make_number(env, e ? -e : (double)read_small_file(path, dst + at, (size_t)length));
}

int terminated_path(const uint8_t *p, size_t n, char *buf, size_t cap) {
  if (n >= cap) return ENAMETOOLONG;
  memcpy(buf, p, n);
  buf[n] = 0;
  return memchr(buf, 0, n) ? ENOENT : 0;
}

ssize_t read_small_file(const char *path, uint8_t *dst, size_t length) {
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return -errno;
  size_t want = length + 1, done = 0;
  int err = 0;
  while (done < want) {
    ssize_t n = pread(fd, dst + done, want - done, (off_t)done);
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    if (n == 0) break;
    done += (size_t)n;
    if (done == length) break;
  }
  close(fd);
  return err ? -err : (ssize_t)done;
}
