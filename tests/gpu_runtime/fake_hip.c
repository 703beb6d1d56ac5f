/* A fake HIP runtime library (libamdhip64's entry points that runtime/mgpu.c uses), for
 * tests without a GPU: the fake CUDA driver's implementation (fake_cuda.c, its cu* names
 * renamed so that only hip* ones are exported) under HIP's names and error codes.
 * It mocks ONLY the vendor library. */
#define cuInit fake_cuInit
#define cuDeviceGetCount fake_cuDeviceGetCount
#define cuDeviceGet fake_cuDeviceGet
#define cuDeviceGetAttribute fake_cuDeviceGetAttribute
#define cuDeviceCanAccessPeer fake_cuDeviceCanAccessPeer
#define cuDevicePrimaryCtxRetain fake_cuDevicePrimaryCtxRetain
#define cuCtxSetCurrent fake_cuCtxSetCurrent
#define cuMemGetInfo_v2 fake_cuMemGetInfo_v2
#define cuMemAlloc_v2 fake_cuMemAlloc_v2
#define cuMemFree_v2 fake_cuMemFree_v2
#define cuMemAllocAsync fake_cuMemAllocAsync
#define cuMemFreeAsync fake_cuMemFreeAsync
#define cuMemHostAlloc fake_cuMemHostAlloc
#define cuMemFreeHost fake_cuMemFreeHost
#define cuMemcpyAsync fake_cuMemcpyAsync
#define cuMemsetD8Async fake_cuMemsetD8Async
#define cuStreamCreate fake_cuStreamCreate
#define cuStreamDestroy_v2 fake_cuStreamDestroy_v2
#define cuStreamSynchronize fake_cuStreamSynchronize
#define cuStreamWaitEvent fake_cuStreamWaitEvent
#define cuEventCreate fake_cuEventCreate
#define cuEventRecord fake_cuEventRecord
#define cuEventDestroy_v2 fake_cuEventDestroy_v2
#define cuModuleLoadData fake_cuModuleLoadData
#define cuModuleLoadDataEx fake_cuModuleLoadDataEx
#define cuModuleUnload fake_cuModuleUnload
#define cuModuleGetFunction fake_cuModuleGetFunction
#define cuLaunchKernel fake_cuLaunchKernel
#define cuGetErrorName fake_cuGetErrorName
#define cuDeviceGetDefaultMemPool fake_cuDeviceGetDefaultMemPool
#define cuMemPoolSetAttribute fake_cuMemPoolSetAttribute
#define cuGetErrorString fake_cuGetErrorString
#include "fake_cuda.c"

static __thread int hip_device;

static const char *hip_name(int code) {
  switch (code) {
    case 0: return "hipSuccess";
    case 1: return "hipErrorInvalidValue";
    case 2: return "hipErrorOutOfMemory";
    case 101: return "hipErrorInvalidDevice";
    case 500: return "hipErrorNotFound";
    default: return "hipErrorUnknown";
  }
}
const char *hipGetErrorName(int code) { return hip_name(code); }
const char *hipGetErrorString(int code) {
  const char *text = NULL;
  fake_cuGetErrorString(code, &text);
  return text ? text : "unknown error";
}
int hipInit(unsigned flags) { return fake_cuInit(flags); }
int hipGetDeviceCount(int *count) { return fake_cuDeviceGetCount(count); }
int hipSetDevice(int device) {
  int status = fake_cuDeviceGet(&hip_device, device);
  return status ? status : fake_cuCtxSetCurrent(&ctx_tokens[device]);
}
int hipMalloc(void **ptr, size_t size) { return fake_cuMemAlloc_v2((uint64_t *)ptr, size); }
int hipFree(void *ptr) { return fake_cuMemFree_v2((uint64_t)(uintptr_t)ptr); }
int hipMallocAsync(void **ptr, size_t size, void *s) { return fake_cuMemAllocAsync((uint64_t *)ptr, size, s); }
int hipFreeAsync(void *ptr, void *s) { return fake_cuMemFreeAsync((uint64_t)(uintptr_t)ptr, s); }
int hipHostMalloc(void **ptr, size_t size, unsigned flags) { return fake_cuMemHostAlloc(ptr, size, flags); }
int hipHostFree(void *ptr) { return fake_cuMemFreeHost(ptr); }
int hipMemGetInfo(size_t *free_bytes, size_t *total) { return fake_cuMemGetInfo_v2(free_bytes, total); }
int hipMemcpyAsync(void *dst, const void *src, size_t size, int kind, void *s) {
  if (kind != 4) return 1; /* the shim always asks for hipMemcpyDefault */
  return fake_cuMemcpyAsync((uint64_t)(uintptr_t)dst, (uint64_t)(uintptr_t)src, size, s);
}
int hipMemsetD8Async(void *dst, unsigned char value, size_t size, void *s) {
  return fake_cuMemsetD8Async((uint64_t)(uintptr_t)dst, value, size, s);
}
int hipStreamCreateWithFlags(void **s, unsigned flags) { return fake_cuStreamCreate(s, flags); }
int hipStreamDestroy(void *s) { return fake_cuStreamDestroy_v2(s); }
int hipStreamSynchronize(void *s) { return fake_cuStreamSynchronize(s); }
int hipStreamWaitEvent(void *s, void *e, unsigned flags) { return fake_cuStreamWaitEvent(s, e, flags); }
int hipEventCreateWithFlags(void **e, unsigned flags) { return fake_cuEventCreate(e, flags); }
int hipEventRecord(void *e, void *s) { return fake_cuEventRecord(e, s); }
int hipEventDestroy(void *e) { return fake_cuEventDestroy_v2(e); }
int hipModuleLoadData(void **m, const void *image) { return fake_cuModuleLoadData(m, image); }
int hipModuleUnload(void *m) { return fake_cuModuleUnload(m); }
int hipModuleGetFunction(void **f, void *m, const char *name) { return fake_cuModuleGetFunction(f, m, name); }
int hipModuleLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
                          unsigned bz, unsigned smem, void *s, void **params, void **extra) {
  return fake_cuLaunchKernel(f, gx, gy, gz, bx, by, bz, smem, s, params, extra);
}
int hipDeviceCanAccessPeer(int *can, int a, int b) { return fake_cuDeviceCanAccessPeer(can, a, b); }
int hipDeviceGetDefaultMemPool(void **pool, int device) { return fake_cuDeviceGetDefaultMemPool(pool, device); }
int hipMemPoolSetAttribute(void *pool, int attribute, void *value) {
  return fake_cuMemPoolSetAttribute(pool, attribute, value);
}
