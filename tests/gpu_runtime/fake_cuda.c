/* A fake CUDA driver library (libcuda's entry points that runtime/mgpu.c uses), for tests on
 * machines without a GPU. It mocks ONLY the vendor library: our shim, driver and engine run
 * unchanged on top of it.
 *
 * Device memory is host memory, but a device address is the host address with bit 62 set
 * (non-canonical on x86-64): the host dereferencing a device pointer crashes instead of
 * silently working. Copies translate tagged addresses and refuse to leave an allocation.
 * Streams and events are trivial (everything runs at once). Module loads keep the image and
 * parse its PTX `.entry` kernels and their `.param` sizes; launches are recorded (kernel,
 * grid, block, shared memory, stream, argument values) and run nothing.
 */
#include <elf.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TAG (1ULL << 62)
#define MAX_ALLOCS 8192
#define MAX_FNS 64
#define MAX_PARAMS 96
#define MAX_LAUNCHES 4096

typedef struct { uint64_t base; size_t size; int device; int host; } Alloc;
typedef struct { char name[128]; int nparams; int psize[MAX_PARAMS]; } Function;
typedef struct { char *image; int nfn; Function fns[MAX_FNS]; } Module;
typedef struct {
  char name[128]; long long dims[7]; void *stream; int nparams;
  unsigned long long params[MAX_PARAMS]; int device;
} Launch;

static Alloc allocs[MAX_ALLOCS];
static Launch launches[MAX_LAUNCHES];
static int nlaunch, initialized, current = -1, ctx_tokens[16], module_loads, stream_waits;
static size_t limit = (size_t)1 << 32, used;
#define MAX_HISTORY (1 << 16)
static uint64_t history_base[MAX_HISTORY];  /* every device allocation made, in order */
static size_t history_size[MAX_HISTORY];
static int nhistory;
static char hidden[128];  /* a kernel cuModuleGetFunction pretends not to find */
static int fail_jit;      /* make the next module loads fail as a PTX JIT error */
static int fill_new = -1; /* a byte new device allocations are filled with (-1: left as is) */

static int devices(void) {
  const char *env = getenv("FAKE_CUDA_DEVICES");
  return env ? atoi(env) : 2;
}

/* ---- introspection, for the tests ---- */
int fake_launch_count(void) { return nlaunch; }
int fake_launch(int i, char *name, long long *dims, unsigned long long *params, void **stream) {
  Launch *l = &launches[i];
  strcpy(name, l->name);
  memcpy(dims, l->dims, sizeof l->dims);
  memcpy(params, l->params, sizeof(unsigned long long) * l->nparams);
  *stream = l->stream;
  return l->nparams;
}
long long fake_alloc_size(unsigned long long ptr) { /* size of the allocation at ptr, or -1 */
  for (int i = 0; i < MAX_ALLOCS; ++i)
    if (allocs[i].size && allocs[i].base == ptr) return (long long)allocs[i].size;
  return -1;
}
int fake_alloc_device(unsigned long long ptr) {
  for (int i = 0; i < MAX_ALLOCS; ++i)
    if (allocs[i].size && allocs[i].base == ptr) return allocs[i].device;
  return -1;
}
long long fake_allocated_size(unsigned long long ptr) { /* latest allocation at ptr, even freed */
  for (int i = nhistory - 1; i >= 0; --i)
    if (history_base[i] == ptr) return (long long)history_size[i];
  return -1;
}
int fake_live_allocations(void) {
  int n = 0;
  for (int i = 0; i < MAX_ALLOCS; ++i) n += allocs[i].size && !allocs[i].host;
  return n;
}
void fake_set_memory_limit(size_t bytes) { limit = bytes; }
void fake_hide_kernel(const char *name) { snprintf(hidden, sizeof hidden, "%s", name ? name : ""); }
void fake_fail_jit(int on) { fail_jit = on; }
void fake_fill_new_allocations(int byte) { fill_new = byte; }
void fake_clear_launches(void) { nlaunch = 0; }
int fake_module_loads(void) { return module_loads; }
int fake_stream_waits(void) { return stream_waits; }

/* ---- errors ---- */
static const struct { int code; const char *name, *text; } ERRORS[] = {
  {0, "CUDA_SUCCESS", "no error"},
  {1, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
  {2, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
  {3, "CUDA_ERROR_NOT_INITIALIZED", "initialization error"},
  {101, "CUDA_ERROR_INVALID_DEVICE", "invalid device ordinal"},
  {200, "CUDA_ERROR_INVALID_IMAGE", "device kernel image is invalid"},
  {218, "CUDA_ERROR_INVALID_PTX", "a PTX JIT compilation failed"},
  {400, "CUDA_ERROR_INVALID_HANDLE", "invalid resource handle"},
  {500, "CUDA_ERROR_NOT_FOUND", "named symbol not found"},
};
int cuGetErrorName(int code, const char **out) {
  for (unsigned i = 0; i < sizeof ERRORS / sizeof *ERRORS; ++i)
    if (ERRORS[i].code == code) { *out = ERRORS[i].name; return 0; }
  *out = NULL;
  return 1;
}
int cuGetErrorString(int code, const char **out) {
  for (unsigned i = 0; i < sizeof ERRORS / sizeof *ERRORS; ++i)
    if (ERRORS[i].code == code) { *out = ERRORS[i].text; return 0; }
  *out = NULL;
  return 1;
}

/* ---- devices and contexts ---- */
int cuInit(unsigned flags) { (void)flags; initialized = 1; return 0; }
int cuDeviceGetCount(int *count) { if (!initialized) return 3; *count = devices(); return 0; }
int cuDeviceGet(int *device, int ordinal) {
  if (!initialized) return 3;
  if (ordinal < 0 || ordinal >= devices()) return 101;
  *device = ordinal;
  return 0;
}
int cuDeviceGetAttribute(int *value, int attribute, int device) {
  (void)device;
  *value = attribute == 75 ? 9 : 0; /* compute capability 9.0: sm_90 */
  return 0;
}
int cuDeviceCanAccessPeer(int *can, int a, int b) { (void)a; (void)b; *can = 1; return 0; }
int cuDevicePrimaryCtxRetain(void **ctx, int device) {
  if (device < 0 || device >= 16) return 101;
  *ctx = &ctx_tokens[device];
  return 0;
}
int cuCtxSetCurrent(void *ctx) {
  if (!ctx) return 400;
  current = (int)((int *)ctx - ctx_tokens);
  return 0;
}
static uint64_t pool_threshold;
unsigned long long fake_pool_threshold(void) { return pool_threshold; }
int cuDeviceGetDefaultMemPool(void **pool, int device) {
  if (device < 0 || device >= 16) return 101;
  *pool = &ctx_tokens[device];
  return 0;
}
int cuMemPoolSetAttribute(void *pool, int attribute, void *value) {
  (void)pool;
  if (attribute != 4) return 1; /* only the release threshold is expected */
  pool_threshold = *(uint64_t *)value;
  return 0;
}
int cuMemGetInfo_v2(size_t *free_bytes, size_t *total) {
  *free_bytes = limit - used; *total = limit; return 0;
}

/* ---- memory ---- */
static Alloc *find(uint64_t addr, size_t size) { /* the allocation holding [addr, addr+size) */
  for (int i = 0; i < MAX_ALLOCS; ++i) {
    Alloc *a = &allocs[i];
    if (a->size && addr >= a->base && addr + size <= a->base + a->size) return a;
  }
  return NULL;
}
static int allocate(uint64_t *out, size_t size, int host) {
  if (!host && used + size > limit) return 2;
  for (int i = 0; i < MAX_ALLOCS; ++i) {
    if (allocs[i].size) continue;
    void *p = aligned_alloc(256, (size + 255) / 256 * 256);
    if (!p) return 2;
    if (!host && fill_new >= 0) memset(p, fill_new, size);
    allocs[i] = (Alloc){(uint64_t)(uintptr_t)p | (host ? 0 : TAG), size, current, host};
    if (!host) used += size;
    if (!host && nhistory < MAX_HISTORY) {
      history_base[nhistory] = allocs[i].base;
      history_size[nhistory++] = size;
    }
    *out = allocs[i].base;
    return 0;
  }
  return 2;
}
static int release(uint64_t base, int host) {
  for (int i = 0; i < MAX_ALLOCS; ++i) {
    if (allocs[i].size && allocs[i].base == base && allocs[i].host == host) {
      free((void *)(uintptr_t)(base & ~TAG));
      if (!host) used -= allocs[i].size;
      allocs[i].size = 0;
      return 0;
    }
  }
  return 1;
}
int cuMemAlloc_v2(uint64_t *ptr, size_t size) { return allocate(ptr, size, 0); }
int cuMemFree_v2(uint64_t ptr) { return release(ptr, 0); }
int cuMemAllocAsync(uint64_t *ptr, size_t size, void *stream) { (void)stream; return allocate(ptr, size, 0); }
int cuMemFreeAsync(uint64_t ptr, void *stream) { (void)stream; return release(ptr, 0); }
int cuMemHostAlloc(void **ptr, size_t size, unsigned flags) {
  uint64_t p = 0;
  (void)flags;
  int status = allocate(&p, size, 1);
  *ptr = (void *)(uintptr_t)p;
  return status;
}
int cuMemFreeHost(void *ptr) { return release((uint64_t)(uintptr_t)ptr, 1); }

static void *host_address(uint64_t addr, size_t size, int *status) {
  if (!(addr & TAG)) return (void *)(uintptr_t)addr;
  if (!find(addr, size)) *status = 1; /* outside every device allocation */
  return (void *)(uintptr_t)(addr & ~TAG);
}
int cuMemcpyAsync(uint64_t dst, uint64_t src, size_t size, void *stream) {
  int status = 0;
  (void)stream;
  void *d = host_address(dst, size, &status), *s = host_address(src, size, &status);
  if (status) return status;
  memmove(d, s, size);
  return 0;
}
int cuMemsetD8Async(uint64_t dst, unsigned char value, size_t size, void *stream) {
  int status = 0;
  (void)stream;
  void *d = host_address(dst, size, &status);
  if (status) return status;
  memset(d, value, size);
  return 0;
}

/* ---- streams and events ---- */
int cuStreamCreate(void **stream, unsigned flags) { (void)flags; *stream = malloc(1); return 0; }
int cuStreamDestroy_v2(void *stream) { free(stream); return 0; }
int cuStreamSynchronize(void *stream) { (void)stream; return 0; }
int cuStreamWaitEvent(void *stream, void *event, unsigned flags) {
  (void)stream; (void)event; (void)flags; ++stream_waits; return 0;
}
int cuEventCreate(void **event, unsigned flags) { (void)flags; *event = malloc(1); return 0; }
int cuEventRecord(void *event, void *stream) { (void)event; (void)stream; return 0; }
int cuEventDestroy_v2(void *event) { free(event); return 0; }

/* ---- modules and launches ---- */
static int param_size(const char *line) {
  if (strstr(line, ".u64") || strstr(line, ".b64") || strstr(line, ".s64") || strstr(line, ".f64"))
    return 8;
  if (strstr(line, ".u16") || strstr(line, ".b16") || strstr(line, ".s16")) return 2;
  if (strstr(line, ".u8") || strstr(line, ".b8") || strstr(line, ".s8")) return 1;
  return 4;
}
/* An ELF code object (HSACO): its kernels are the function symbols (argument sizes unknown:
 * their launches record no arguments). */
static Module *load_elf(const unsigned char *elf) {
  const Elf64_Ehdr *eh = (const Elf64_Ehdr *)elf;
  const Elf64_Shdr *sh = (const Elf64_Shdr *)(elf + eh->e_shoff);
  Module *m = calloc(1, sizeof *m);
  for (int i = 0; i < eh->e_shnum; ++i) {
    if (sh[i].sh_type != SHT_SYMTAB && sh[i].sh_type != SHT_DYNSYM) continue;
    const Elf64_Sym *sym = (const Elf64_Sym *)(elf + sh[i].sh_offset);
    const char *names = (const char *)(elf + sh[sh[i].sh_link].sh_offset);
    for (size_t k = 0; k < sh[i].sh_size / sizeof *sym && m->nfn < MAX_FNS; ++k) {
      if (ELF64_ST_TYPE(sym[k].st_info) != STT_FUNC) continue;
      const char *name = names + sym[k].st_name;
      int seen = 0;
      for (int j = 0; j < m->nfn; ++j) seen |= !strcmp(m->fns[j].name, name);
      if (!seen) snprintf(m->fns[m->nfn++].name, sizeof m->fns[0].name, "%s", name);
    }
  }
  return m;
}

static int load(void **module, const void *image, char *log, size_t log_size) {
  const char *text = image;
  if (!memcmp(image, ELFMAG, SELFMAG)) {
    if (fail_jit) return 200;
    *module = load_elf(image);
    ++module_loads;
    return 0;
  }
  if (fail_jit || strstr(text, "FAKE_JIT_ERROR")) {
    if (log) snprintf(log, log_size, "ptxas fatal: FAKE_JIT_ERROR found in the PTX");
    return 218;
  }
  if (!strstr(text, ".version")) return 200;
  Module *m = calloc(1, sizeof *m);
  m->image = strdup(text);
  for (const char *p = strstr(text, ".entry "); p && m->nfn < MAX_FNS; p = strstr(p + 1, ".entry ")) {
    Function *f = &m->fns[m->nfn++];
    sscanf(p + 7, "%127[A-Za-z0-9_$]", f->name);
    const char *end = strchr(p, ')');
    for (const char *q = strstr(p, ".param"); q && q < end && f->nparams < MAX_PARAMS;
         q = strstr(q + 1, ".param")) {
      const char *eol = strchr(q, '\n');
      char line[256] = {0};
      memcpy(line, q, eol && eol - q < 255 ? (size_t)(eol - q) : 255);
      f->psize[f->nparams++] = param_size(line);
    }
  }
  ++module_loads;
  *module = m;
  return 0;
}
int cuModuleLoadData(void **module, const void *image) { return load(module, image, NULL, 0); }
int cuModuleLoadDataEx(void **module, const void *image, unsigned n, int *options, void **values) {
  char *log = NULL;
  size_t log_size = 0;
  for (unsigned i = 0; i < n; ++i) {
    if (options[i] == 5) log = values[i];
    if (options[i] == 6) log_size = (size_t)(uintptr_t)values[i];
  }
  return load(module, image, log, log_size);
}
int cuModuleUnload(void *module) {
  Module *m = module;
  free(m->image);
  free(m);
  return 0;
}
int cuModuleGetFunction(void **function, void *module, const char *name) {
  Module *m = module;
  if (hidden[0] && !strcmp(name, hidden)) return 500;
  for (int i = 0; i < m->nfn; ++i)
    if (!strcmp(m->fns[i].name, name)) { *function = &m->fns[i]; return 0; }
  return 500;
}
int cuLaunchKernel(void *function, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                   unsigned by, unsigned bz, unsigned smem, void *stream, void **params,
                   void **extra) {
  Function *f = function;
  (void)extra;
  if (!bx || !by || !bz || bx * by * bz > 1024 || !gx || !gy || !gz) return 1;
  if (nlaunch == MAX_LAUNCHES) return 2;
  Launch *l = &launches[nlaunch++];
  strcpy(l->name, f->name);
  long long dims[7] = {gx, gy, gz, bx, by, bz, smem};
  memcpy(l->dims, dims, sizeof dims);
  l->stream = stream;
  l->nparams = f->nparams;
  l->device = current;
  for (int i = 0; i < f->nparams; ++i) {
    l->params[i] = 0;
    memcpy(&l->params[i], params[i], (size_t)f->psize[i]);
  }
  return 0;
}
