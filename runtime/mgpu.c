/* The GPU runtime shim: MLIR's GPU runtime ABI (mgpu*) and max.driver's device memory, over
 * the vendor's driver library (CUDA driver or HIP), opened with dlopen at run time.
 *
 * Compiled and loaded by runtime/gpu.py (RTLD_GLOBAL, so that a compiled model's undefined
 * mgpu* symbols bind here). No vendor header is needed: every entry point is looked up by
 * name into a table, one table per vendor (CUDA and HIP are nearly 1:1).
 *
 * Errors never abort: the first failing vendor call of a thread is recorded (the call's
 * name, the vendor's error name and string), later mgpu* calls of that thread do nothing,
 * and Python reads and clears the record (max_gpu_error) and raises.
 *
 * Streams: the host code of a compiled model creates, synchronizes and destroys a stream
 * around every launch; here mgpuStreamCreate returns the thread's run stream (set by Python
 * before the call) and synchronize/destroy of it do nothing, so a model's kernels, copies,
 * allocations and frees are queued in order on the caller's stream, without host waits.
 */
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

typedef int (*fn_t)();

enum { API_NONE = 0, API_CUDA = 1, API_HIP = 2 };

/* One slot per operation; the name each vendor gives it. */
enum {
  F_INIT, F_COUNT, F_CTX_RETAIN, F_CTX_SET, F_SET_DEVICE, F_LOAD, F_LOAD_EX, F_UNLOAD, F_GET_FN,
  F_LAUNCH, F_STREAM_CREATE, F_STREAM_DESTROY, F_STREAM_SYNC, F_STREAM_WAIT, F_EVENT_CREATE,
  F_EVENT_RECORD, F_EVENT_DESTROY, F_ALLOC, F_FREE, F_ALLOC_ASYNC, F_FREE_ASYNC, F_COPY,
  F_MEMSET, F_HOST_ALLOC, F_HOST_FREE, F_ERR_NAME, F_ERR_STRING, F_MEM_INFO, F_DEVICE_GET,
  F_DEFAULT_POOL, F_POOL_SET, F_COUNT_OF
};

static const char *CUDA_NAMES[F_COUNT_OF] = {
  "cuInit", "cuDeviceGetCount", "cuDevicePrimaryCtxRetain", "cuCtxSetCurrent", NULL,
  "cuModuleLoadData", "cuModuleLoadDataEx", "cuModuleUnload", "cuModuleGetFunction",
  "cuLaunchKernel", "cuStreamCreate", "cuStreamDestroy_v2", "cuStreamSynchronize",
  "cuStreamWaitEvent", "cuEventCreate", "cuEventRecord", "cuEventDestroy_v2", "cuMemAlloc_v2",
  "cuMemFree_v2", "cuMemAllocAsync", "cuMemFreeAsync", "cuMemcpyAsync", "cuMemsetD8Async",
  "cuMemHostAlloc", "cuMemFreeHost", "cuGetErrorName", "cuGetErrorString", "cuMemGetInfo_v2",
  "cuDeviceGet", "cuDeviceGetDefaultMemPool", "cuMemPoolSetAttribute",
};
static const char *HIP_NAMES[F_COUNT_OF] = {
  "hipInit", "hipGetDeviceCount", NULL, NULL, "hipSetDevice",
  "hipModuleLoadData", "hipModuleLoadDataEx", "hipModuleUnload", "hipModuleGetFunction",
  "hipModuleLaunchKernel", "hipStreamCreateWithFlags", "hipStreamDestroy", "hipStreamSynchronize",
  "hipStreamWaitEvent", "hipEventCreateWithFlags", "hipEventRecord", "hipEventDestroy",
  "hipMalloc", "hipFree", "hipMallocAsync", "hipFreeAsync", "hipMemcpyAsync", "hipMemsetD8Async",
  "hipHostMalloc", "hipHostFree", "hipGetErrorName", "hipGetErrorString", "hipMemGetInfo", NULL,
  "hipDeviceGetDefaultMemPool", "hipMemPoolSetAttribute",
};
/* Optional: absent from older drivers (or a test's fake); the shim falls back. */
static const int OPTIONAL[] = {F_LOAD_EX, F_ALLOC_ASYNC, F_FREE_ASYNC, F_MEM_INFO, F_ERR_STRING,
                               F_DEFAULT_POOL, F_POOL_SET};
static unsigned char pool_kept[64]; /* the device's pool keeps freed memory (set once) */

static void *lib;
static int api = API_NONE;
static fn_t F[F_COUNT_OF];
static void *contexts[64];           /* CUDA primary context per ordinal */
static __thread int cur_device = -1; /* ordinal made current on this thread */
static __thread int want_device = 0; /* ordinal the next mgpu* calls use */
static __thread void *run_stream;    /* what mgpuStreamCreate returns */
static __thread int err_code;        /* first error of this thread, 0 if none */
static __thread char err_text[2048];

static const char *vendor_error_name(int code) {
  const char *name = NULL;
  if (api == API_CUDA && F[F_ERR_NAME]) F[F_ERR_NAME](code, &name);
  if (api == API_HIP && F[F_ERR_NAME]) name = ((const char *(*)(int))(void *)F[F_ERR_NAME])(code);
  return name ? name : "unknown error";
}

static const char *vendor_error_string(int code) {
  const char *text = NULL;
  if (api == API_CUDA && F[F_ERR_STRING]) F[F_ERR_STRING](code, &text);
  if (api == API_HIP && F[F_ERR_STRING]) text = ((const char *(*)(int))(void *)F[F_ERR_STRING])(code);
  return text ? text : "";
}

/* Records a failed vendor call (the first one of the thread wins). Returns its status. */
static int fail(const char *call, int code, const char *detail) {
  if (!err_code) {
    err_code = code ? code : -1;
    snprintf(err_text, sizeof err_text, "%s failed: %s (%d)%s%s%s%s", call,
             code ? vendor_error_name(code) : "error", code, code ? ": " : "",
             code ? vendor_error_string(code) : "", detail ? "\n" : "", detail ? detail : "");
  }
  return code ? code : -1;
}

#define NAME(slot) (api == API_HIP ? HIP_NAMES[slot] : CUDA_NAMES[slot])
#define CHECK(slot, call)                                           \
  do {                                                              \
    int status_ = (call);                                           \
    if (status_) return fail(NAME(slot), status_, NULL);            \
  } while (0)

/* ---- Opening the vendor library. ---- */

const char *max_gpu_error(void) { return err_code ? err_text : NULL; }
void max_gpu_clear_error(void) { err_code = 0; err_text[0] = 0; }
int max_gpu_api(void) { return api; }

/* Opens `path` as the vendor library of `which` (API_CUDA or API_HIP) and initializes it.
 * Returns 0, or -1 with the reason in max_gpu_error(). */
int max_gpu_open(const char *path, int which) {
  const char **names = which == API_HIP ? HIP_NAMES : CUDA_NAMES;
  void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  char detail[512];
  if (!handle) {
    snprintf(detail, sizeof detail, "%s", dlerror());
    api = API_NONE;
    return fail("dlopen", 0, detail);
  }
  fn_t table[F_COUNT_OF];
  for (int i = 0; i < F_COUNT_OF; ++i) {
    table[i] = names[i] ? (fn_t)dlsym(handle, names[i]) : NULL;
    int optional = 0;
    for (unsigned k = 0; k < sizeof OPTIONAL / sizeof *OPTIONAL; ++k) optional |= OPTIONAL[k] == i;
    if (names[i] && !table[i] && !optional) {
      snprintf(detail, sizeof detail, "%s has no symbol %s", path, names[i]);
      dlclose(handle);
      return fail("dlsym", 0, detail);
    }
  }
  lib = handle;
  api = which;
  memcpy(F, table, sizeof F);
  memset(contexts, 0, sizeof contexts);
  memset(pool_kept, 0, sizeof pool_kept);
  cur_device = -1;
  CHECK(F_INIT, F[F_INIT](0));
  return 0;
}

/* Stream-ordered frees return memory to the device's pool; by default the pool gives it
 * back to the system at every synchronization, so that the next call maps it again. Keep it
 * (CU_MEMPOOL_ATTR_RELEASE_THRESHOLD / hipMemPoolAttrReleaseThreshold = 4, at UINT64_MAX). */
static void keep_pool(int ordinal, int device) {
  void *pool = NULL;
  uint64_t threshold = UINT64_MAX;
  if (ordinal < 0 || ordinal >= 64 || pool_kept[ordinal] || !F[F_DEFAULT_POOL] || !F[F_POOL_SET])
    return;
  pool_kept[ordinal] = 1;
  if (F[F_DEFAULT_POOL](&pool, device) == 0 && pool) F[F_POOL_SET](pool, 4, &threshold);
}

/* Makes `want_device` current on this thread (CUDA: its primary context). */
static int ensure_device(void) {
  if (cur_device == want_device) return 0;
  if (api == API_NONE) return fail("max_gpu", 0, "no GPU driver library is open");
  if (api == API_CUDA) {
    if (want_device < 0 || want_device >= 64) return fail("cuDeviceGet", 101, NULL);
    if (!contexts[want_device]) {
      int dev = 0;
      CHECK(F_DEVICE_GET, F[F_DEVICE_GET](&dev, want_device));
      CHECK(F_CTX_RETAIN, F[F_CTX_RETAIN](&contexts[want_device], dev));
      CHECK(F_CTX_SET, F[F_CTX_SET](contexts[want_device]));
      keep_pool(want_device, dev);
    }
    CHECK(F_CTX_SET, F[F_CTX_SET](contexts[want_device]));
  } else {
    CHECK(F_SET_DEVICE, F[F_SET_DEVICE](want_device));
    keep_pool(want_device, want_device);
  }
  cur_device = want_device;
  return 0;
}

/* ---- max.driver's entry points: each returns 0 or a failure status. ---- */

int max_gpu_device_count(int *count) { *count = 0; CHECK(F_COUNT, F[F_COUNT](count)); return 0; }

int max_gpu_use(int ordinal, void *stream) {
  want_device = ordinal;
  run_stream = stream;
  return ensure_device();
}

int max_gpu_stream_create(void **stream) {
  if (ensure_device()) return -1;
  CHECK(F_STREAM_CREATE, F[F_STREAM_CREATE](stream, 1 /* non-blocking */));
  return 0;
}

int max_gpu_stream_destroy(void *stream) {
  if (ensure_device()) return -1;
  CHECK(F_STREAM_DESTROY, F[F_STREAM_DESTROY](stream));
  return 0;
}

int max_gpu_stream_sync(void *stream) {
  if (ensure_device()) return -1;
  CHECK(F_STREAM_SYNC, F[F_STREAM_SYNC](stream));
  return 0;
}

/* Work queued on `waiter` after this call starts after all work queued on `waited` so far. */
int max_gpu_stream_wait(void *waiter, void *waited) {
  void *event = NULL;
  if (ensure_device()) return -1;
  CHECK(F_EVENT_CREATE, F[F_EVENT_CREATE](&event, 2 /* disable timing */));
  CHECK(F_EVENT_RECORD, F[F_EVENT_RECORD](event, waited));
  CHECK(F_STREAM_WAIT, F[F_STREAM_WAIT](waiter, event, 0));
  CHECK(F_EVENT_DESTROY, F[F_EVENT_DESTROY](event));
  return 0;
}

int max_gpu_alloc(void **ptr, size_t size, void *stream) {
  *ptr = NULL;
  if (ensure_device()) return -1;
  if (size == 0) size = 1; /* drivers refuse 0 bytes; an empty tensor still has an address */
  if (stream && F[F_ALLOC_ASYNC])
    CHECK(F_ALLOC_ASYNC, F[F_ALLOC_ASYNC](ptr, size, stream));
  else
    CHECK(F_ALLOC, F[F_ALLOC](ptr, size));
  return 0;
}

int max_gpu_free(void *ptr, void *stream) {
  if (ensure_device()) return -1;
  if (stream && F[F_FREE_ASYNC]) {
    CHECK(F_FREE_ASYNC, F[F_FREE_ASYNC](ptr, stream));
  } else {
    if (stream) CHECK(F_STREAM_SYNC, F[F_STREAM_SYNC](stream));
    CHECK(F_FREE, F[F_FREE](ptr));
  }
  return 0;
}

/* Any direction (unified addressing): host<->device, device<->device, peer. */
int max_gpu_copy(void *dst, const void *src, size_t size, void *stream) {
  if (size == 0) return 0;
  if (ensure_device()) return -1;
  if (api == API_HIP)
    CHECK(F_COPY, F[F_COPY](dst, src, size, 4 /* hipMemcpyDefault */, stream));
  else
    CHECK(F_COPY, F[F_COPY](dst, src, size, stream));
  return 0;
}

int max_gpu_memset(void *dst, int value, size_t size, void *stream) {
  if (size == 0) return 0;
  if (ensure_device()) return -1;
  CHECK(F_MEMSET, F[F_MEMSET](dst, (unsigned char)value, size, stream));
  return 0;
}

int max_gpu_host_alloc(void **ptr, size_t size) {
  if (ensure_device()) return -1;
  CHECK(F_HOST_ALLOC, F[F_HOST_ALLOC](ptr, size ? size : 1, 0));
  return 0;
}

int max_gpu_host_free(void *ptr) {
  if (ensure_device()) return -1;
  CHECK(F_HOST_FREE, F[F_HOST_FREE](ptr));
  return 0;
}

int max_gpu_mem_info(size_t *free_bytes, size_t *total_bytes) {
  *free_bytes = *total_bytes = 0;
  if (ensure_device()) return -1;
  if (!F[F_MEM_INFO]) return 0;
  CHECK(F_MEM_INFO, F[F_MEM_INFO](free_bytes, total_bytes));
  return 0;
}

/* ---- MLIR's GPU runtime ABI, as gpu-to-llvm's host code calls it. ---- */

#define SKIP_ON_ERROR(value) \
  do {                       \
    if (err_code || ensure_device()) return value; \
  } while (0)

void *mgpuModuleLoad(void *data, size_t size) {
  void *module = NULL;
  (void)size;
  SKIP_ON_ERROR(NULL);
  int status = F[F_LOAD](&module, data);
  if (status) fail(NAME(F_LOAD), status, NULL);
  return module;
}

/* PTX: the driver compiles it for the device (errors come with the JIT's log). */
void *mgpuModuleLoadJIT(void *data, int opt_level) {
  void *module = NULL;
  SKIP_ON_ERROR(NULL);
  if (api != API_CUDA) {
    fail("mgpuModuleLoadJIT", 0, "a PTX module needs the CUDA driver (this is HIP)");
    return NULL;
  }
  if (!F[F_LOAD_EX]) return mgpuModuleLoad(data, 0);
  static __thread char log[8192];
  log[0] = 0;
  /* CU_JIT_ERROR_LOG_BUFFER, CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES, CU_JIT_OPTIMIZATION_LEVEL */
  int options[3] = {5, 6, 7};
  void *values[3] = {log, (void *)(uintptr_t)sizeof log, (void *)(uintptr_t)opt_level};
  int status = F[F_LOAD_EX](&module, data, 3, options, values);
  if (status) fail(NAME(F_LOAD_EX), status, log[0] ? log : NULL);
  return module;
}

void mgpuModuleUnload(void *module) {
  if (!module || api == API_NONE) return;
  F[F_UNLOAD](module); /* at exit or dlclose: nothing to report to */
}

void *mgpuModuleGetFunction(void *module, const char *name) {
  void *function = NULL;
  SKIP_ON_ERROR(NULL);
  if (!module) {
    fail(NAME(F_GET_FN), 0, "the kernels' module was not loaded");
    return NULL;
  }
  int status = F[F_GET_FN](&function, module, name);
  if (status) {
    char detail[300];
    snprintf(detail, sizeof detail, "kernel %s", name);
    fail(NAME(F_GET_FN), status, detail);
  }
  return function;
}

void mgpuLaunchKernel(void *function, intptr_t gx, intptr_t gy, intptr_t gz, intptr_t bx,
                      intptr_t by, intptr_t bz, int32_t smem, void *stream, void **params,
                      void **extra, size_t count) {
  (void)count;
  SKIP_ON_ERROR();
  if (!function) return;
  int status = F[F_LAUNCH](function, (unsigned)gx, (unsigned)gy, (unsigned)gz, (unsigned)bx,
                           (unsigned)by, (unsigned)bz, (unsigned)smem, stream, params, extra);
  if (status) fail(NAME(F_LAUNCH), status, NULL);
}

void *mgpuStreamCreate(void) {
  void *stream = NULL;
  if (run_stream) return run_stream;
  SKIP_ON_ERROR(NULL);
  max_gpu_stream_create(&stream);
  return stream;
}

void mgpuStreamDestroy(void *stream) {
  if (stream == run_stream || api == API_NONE) return;
  F[F_STREAM_DESTROY](stream);
}

void mgpuStreamSynchronize(void *stream) {
  if (stream == run_stream) return; /* Python synchronizes the run stream when it must */
  SKIP_ON_ERROR();
  max_gpu_stream_sync(stream);
}

void mgpuStreamWaitEvent(void *stream, void *event) {
  SKIP_ON_ERROR();
  int status = F[F_STREAM_WAIT](stream, event, 0);
  if (status) fail(NAME(F_STREAM_WAIT), status, NULL);
}

void *mgpuEventCreate(void) {
  void *event = NULL;
  SKIP_ON_ERROR(NULL);
  int status = F[F_EVENT_CREATE](&event, 2);
  if (status) fail(NAME(F_EVENT_CREATE), status, NULL);
  return event;
}

void mgpuEventDestroy(void *event) {
  if (api != API_NONE && event) F[F_EVENT_DESTROY](event);
}

void mgpuEventSynchronize(void *event) { (void)event; /* run stream: Python synchronizes */ }

void mgpuEventRecord(void *event, void *stream) {
  SKIP_ON_ERROR();
  int status = F[F_EVENT_RECORD](event, stream);
  if (status) fail(NAME(F_EVENT_RECORD), status, NULL);
}

void *mgpuMemAlloc(uint64_t size, void *stream, int host_shared) {
  void *ptr = NULL;
  (void)host_shared;
  SKIP_ON_ERROR(NULL);
  max_gpu_alloc(&ptr, (size_t)size, stream ? stream : run_stream);
  return ptr;
}

void mgpuMemFree(void *ptr, void *stream) {
  /* Freed even after an error (nothing else would); a failure here keeps the first error. */
  if (!ptr || api == API_NONE) return;
  max_gpu_free(ptr, stream ? stream : run_stream);
}

void mgpuMemcpy(void *dst, void *src, size_t size, void *stream) {
  SKIP_ON_ERROR();
  max_gpu_copy(dst, src, size, stream ? stream : run_stream);
}

void mgpuMemset32(void *dst, unsigned value, size_t count, void *stream) {
  SKIP_ON_ERROR();
  if (value == 0 || value == 0xffffffffu) {
    max_gpu_memset(dst, (int)(value & 0xff), count * 4, stream ? stream : run_stream);
    return;
  }
  fail("mgpuMemset32", 0, "only 0 and all-ones patterns are supported");
}

void mgpuMemset16(void *dst, unsigned short value, size_t count, void *stream) {
  SKIP_ON_ERROR();
  if (value == 0 || value == 0xffffu) {
    max_gpu_memset(dst, (int)(value & 0xff), count * 2, stream ? stream : run_stream);
    return;
  }
  fail("mgpuMemset16", 0, "only 0 and all-ones patterns are supported");
}

void mgpuSetDefaultDevice(int32_t device) { want_device = device; }
