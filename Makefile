# fqt — one Makefile for the library, the CLI, the tests and the benchmarks.
#
#   make                      libfqt.a and ./fqt (release)
#   make test                 build and run the CPU test suite; ends with "N passed, N failed"
#   make test SANITIZE=address|undefined
#   make bench                build the benchmarks (bench/*.c) into build/<config>/bench
#   make test-cuda            build and run the CUDA tests (tests/cuda/*.c; needs a GPU)
#   make bench-cuda           build and run the CUDA kernel benchmarks (bench/cuda/*.c)
#   make demo                 the FP4-vs-BF16 comparison (see README)
#   make fuzz                 libFuzzer harnesses (tests/fuzz/*.c) into build/fuzz with clang;
#                             not part of `make test`; run e.g. build/fuzz/fuzz_json -max_total_time=300
#   V=1                       show the commands
#   make test-arm64           the CPU suite cross-compiled for AArch64 and run under qemu-user
#                             (Debian: gcc-aarch64-linux-gnu qemu-user libgomp1-arm64-cross)
#   TEST_RUNNER=cmd           run each test binary (and the CLI the tests start) under cmd
#                             (test-arm64 is `make test` with a cross CC and this set to qemu)
#
# Knobs: USE_OMP ?= auto (yes/no), NATIVE ?= 1 (-march=native; the GEMM and quantizer
# kernels dispatch on the CPU at run time either way), USE_CUDA ?= auto (yes/no: compile
# src/cuda/*.cu with nvcc into libfqt.a and link cudart, cuBLASLt, cuBLAS; auto = when nvcc is
# on the PATH or in $(CUDA_HOME) and the three libraries are found: with nvcc but without the
# libraries, `make test` still compiles the .cu files and builds CPU-only), CUDA_DEBUG=1 (synchronize and check after every kernel
# launch; also at run time with FQT_CUDA_SYNC=1), CUDA_ARCHS ?= 90a 100a (the machine code
# nvcc writes: Hopper and Blackwell), USE_BLAS ?= auto (openblas/no: OpenBLAS is
# linked into the benchmarks only, as the baseline bench_gemm compares fqt_sgemm_nt with),
# USE_MPI ?= auto (yes/no: data-parallel training over MPI, found through pkg-config ompi or
# mpicc --showme), USE_NCCL ?= auto (yes/no: the NCCL collectives of src/dist/nccl.cu; needs
# nvcc, nccl.h and MPI).
# Objects go under build/<config>/ with -MMD -MP deps, and everything rebuilds when the flags
# change.

CC       ?= cc
SANITIZE ?=
USE_OMP  ?= auto
USE_CUDA ?= auto
USE_MPI  ?= auto
USE_NCCL ?= auto
NATIVE   ?= 1
USE_BLAS ?= auto
TEST_RUNNER ?=

ifeq ($(SANITIZE),)
  CONFIG := release
else ifeq ($(SANITIZE),address)
  CONFIG := asan
else ifeq ($(SANITIZE),undefined)
  CONFIG := ubsan
else
  $(error SANITIZE must be empty, 'address' or 'undefined', not '$(SANITIZE)')
endif
ifeq ($(filter $(USE_OMP),auto yes no),)
  $(error USE_OMP must be auto, yes or no)
endif
ifeq ($(filter $(USE_CUDA),auto yes no),)
  $(error USE_CUDA must be auto, yes or no)
endif
ifeq ($(filter $(USE_MPI),auto yes no),)
  $(error USE_MPI must be auto, yes or no)
endif
ifeq ($(filter $(USE_NCCL),auto yes no),)
  $(error USE_NCCL must be auto, yes or no)
endif

BUILD ?= build/$(CONFIG)

ifeq ($(USE_OMP),auto)
  USE_OMP := $(shell echo 'int main(void){return 0;}' | $(CC) -fopenmp -x c - -o /dev/null 2>/dev/null && echo yes || echo no)
endif
ifeq ($(filter $(USE_BLAS),auto openblas no),)
  $(error USE_BLAS must be auto, openblas or no)
endif
ifeq ($(USE_BLAS),auto)
  USE_BLAS := $(shell printf '\043include <cblas.h>\nint main(void){float a=1,c=0;cblas_sgemm(CblasRowMajor,CblasNoTrans,CblasTrans,1,1,1,1.0f,&a,1,&a,1,0.0f,&c,1);return c!=1;}' | $(CC) -x c - -lopenblas -o /dev/null 2>/dev/null && echo openblas || echo no)
endif
CUDA_HOME ?= /usr/local/cuda
NVCC ?= $(or $(shell command -v nvcc 2>/dev/null),$(wildcard $(CUDA_HOME)/bin/nvcc))
ifneq ($(NVCC),)
  CUDA_HOME := $(abspath $(dir $(realpath $(NVCC)))..)
endif
# The CUDA libraries: each one looked for in the toolkit's own folders, then where ldconfig
# knows it, then in pip's nvidia/*/lib layout; libX.so if present, else the versioned
# libX.so.N (a toolkit without the development symlinks). Each found one links as
# -L<dir> -Wl,-rpath,<dir> -l<X> (or -l:libX.so.N).
CUDA_LIB_DIRS := $(CUDA_HOME)/lib64 $(CUDA_HOME)/lib $(wildcard $(CUDA_HOME)/targets/*/lib) \
  $(sort $(shell ldconfig -p 2>/dev/null | sed -n 's@.*lib\(cudart\|cublas\|cublasLt\|nccl\)\.so.* => \(.*\)/[^/]*$$@\2@p')) \
  /usr/lib/x86_64-linux-gnu /usr/lib64 $(wildcard /usr/local/lib/python3*/*-packages/nvidia/*/lib)
cuda_lib_file = $(firstword $(foreach d,$(CUDA_LIB_DIRS),$(wildcard $(d)/lib$(1).so) $(sort $(wildcard $(d)/lib$(1).so.[0-9]*))))
cuda_lib_flags = $(foreach f,$(call cuda_lib_file,$(1)),-L$(dir $(f)) -Wl,-rpath,$(dir $(f)) $(if $(filter %.so,$(f)),-l$(1),-l:$(notdir $(f))))
CUDA_LIBS_MISSING := $(strip $(foreach l,cudart cublas cublasLt,$(if $(call cuda_lib_file,$(l)),,lib$(l))))
# CUDA_CHECK: nvcc is here but a library is not, so the .cu files are compiled (to keep them
# building) but not linked; the build is CPU-only.
CUDA_CHECK := no
ifeq ($(USE_CUDA),auto)
  USE_CUDA := $(if $(NVCC),$(if $(CUDA_LIBS_MISSING),no,yes),no)
  CUDA_CHECK := $(if $(NVCC),$(if $(CUDA_LIBS_MISSING),yes,no),no)
endif
ifeq ($(USE_CUDA),yes)
  ifeq ($(NVCC),)
    $(error USE_CUDA=yes but nvcc was not found (install the CUDA toolkit or set NVCC=/path/to/nvcc))
  endif
  ifneq ($(CUDA_LIBS_MISSING),)
    $(error USE_CUDA=yes but $(CUDA_LIBS_MISSING) not found in $(CUDA_LIB_DIRS))
  endif
endif

# MPI: compile and link flags from pkg-config (Open MPI's ompi.pc, or mpich.pc), else from
# the compiler wrapper; the library is still built with $(CC).
ifneq ($(USE_MPI),no)
  MPI_CFLAGS := $(shell pkg-config --cflags ompi 2>/dev/null || pkg-config --cflags mpich 2>/dev/null || mpicc --showme:compile 2>/dev/null)
  MPI_LIBS   := $(shell pkg-config --libs ompi 2>/dev/null || pkg-config --libs mpich 2>/dev/null || mpicc --showme:link 2>/dev/null)
  MPI_FOUND  := $(shell printf '\043include <mpi.h>\nint main(void){return MPI_Init(0,0);}\n' | $(CC) $(MPI_CFLAGS) -x c - $(MPI_LIBS) -o /dev/null 2>/dev/null && echo yes || echo no)
  ifeq ($(USE_MPI)$(MPI_FOUND),yesno)
    $(error USE_MPI=yes but no working MPI was found (apt-get install libopenmpi-dev openmpi-bin))
  endif
  USE_MPI := $(MPI_FOUND)
endif
# NCCL needs MPI (bootstrap), nvcc and nccl.h.
ifneq ($(USE_NCCL),no)
  NCCL_FOUND := $(if $(and $(filter yes,$(USE_MPI)),$(filter yes,$(USE_CUDA)),$(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h),$(call cuda_lib_file,nccl)),yes,no)
  ifeq ($(USE_NCCL)$(NCCL_FOUND),yesno)
    $(error USE_NCCL=yes needs MPI, the CUDA build, nccl.h and libnccl (CUDA_HOME=$(CUDA_HOME)))
  endif
  USE_NCCL := $(NCCL_FOUND)
endif

# No fast-math anywhere (flushing subnormals breaks scales and NaN checks); no FMA
# contraction, so quantizer arithmetic is the same on every machine and on the GPU.
CFLAGS_BASE := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O2 -g \
  -Wall -Wextra -Wshadow -Wno-unused-parameter -ffp-contract=off -fno-fast-math \
  -Iinclude -Isrc
ifeq ($(NATIVE),1)
  CFLAGS_BASE += -march=native
endif
LDLIBS := -lm
ifeq ($(USE_OMP),yes)
  CFLAGS_BASE += -fopenmp
  LDLIBS += -fopenmp
endif
ifeq ($(USE_MPI),yes)
  CFLAGS_BASE += -DFQT_HAVE_MPI $(MPI_CFLAGS)
  LDLIBS += $(MPI_LIBS)
endif
ifeq ($(USE_NCCL),yes)
  CFLAGS_BASE += -DFQT_HAVE_NCCL
  LDLIBS += $(call cuda_lib_flags,nccl)
endif
ifeq ($(CONFIG),asan)
  CFLAGS_BASE += -fsanitize=address -fno-omit-frame-pointer -DFQT_SANITIZE=1
  LDLIBS += -fsanitize=address
endif
ifeq ($(CONFIG),ubsan)
  CFLAGS_BASE += -fsanitize=undefined -fno-sanitize-recover=undefined -DFQT_SANITIZE=1
  LDLIBS += -fsanitize=undefined
endif
CFLAGS := $(CFLAGS_BASE) $(EXTRA_CFLAGS)
BENCH_CFLAGS :=
BENCH_LDLIBS :=
ifeq ($(USE_BLAS),openblas)
  BENCH_CFLAGS += -DFQT_HAVE_OPENBLAS=1
  BENCH_LDLIBS += -lopenblas
endif

# nvcc: Hopper (sm_90a: wgmma) and Blackwell (sm_100a) machine code, no fast-math, no FMA
# contraction (-fmad=false: the quantizers and AdamW must round like the CPU), IEEE division
# and square root (nvcc's defaults without --use_fast_math), spills reported.
CUDA_ARCHS ?= 90a 100a
NVCCFLAGS := -std=c++17 -O2 -g -lineinfo -fmad=false -prec-div=true -prec-sqrt=true -ftz=false \
  $(foreach a,$(CUDA_ARCHS),-gencode arch=compute_$(a),code=sm_$(a)) \
  -Xptxas=--warn-on-spills -Werror all-warnings \
  -Xcompiler -Wall,-Wextra,-Wno-unused-parameter,-fno-fast-math -Iinclude -Isrc \
  $(if $(filter yes,$(USE_OMP)),-Xcompiler -fopenmp) $(EXTRA_NVCCFLAGS)
ifeq ($(CUDA_DEBUG),1)
  NVCCFLAGS += -DFQT_CUDA_DEBUG=1
endif
CUDA_SRC := $(if $(filter yes,$(USE_CUDA)),$(sort $(wildcard src/cuda/*.cu)))
CUDA_CHECK_OBJ := $(if $(filter yes,$(CUDA_CHECK)),$(patsubst %.cu,$(BUILD)/%.o,$(sort $(wildcard src/cuda/*.cu)) \
  $(if $(and $(filter yes,$(USE_MPI)),$(wildcard $(CUDA_HOME)/include/nccl.h /usr/include/nccl.h)),src/dist/nccl.cu)))
ifeq ($(USE_CUDA),yes)
  CFLAGS += -DFQT_HAVE_CUDA=1
  LDLIBS += $(foreach l,cublasLt cublas cudart,$(call cuda_lib_flags,$(l))) -lstdc++
endif

LIB_SRC   := $(sort $(wildcard src/*/*.c))
TOOL_SRC  := $(sort $(wildcard tools/*.c))
TEST_SRC  := $(sort $(wildcard tests/test_*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))
LIB_OBJ   := $(LIB_SRC:%.c=$(BUILD)/%.o) $(CUDA_SRC:%.cu=$(BUILD)/%.o)
ifeq ($(USE_NCCL),yes)
  LIB_OBJ += $(BUILD)/src/dist/nccl.o
endif
CUDA_TEST_SRC := $(sort $(wildcard tests/cuda/test_*.c))
CUDA_TEST_BIN := $(CUDA_TEST_SRC:tests/cuda/%.c=$(BUILD)/tests/cuda/%)
CUDA_BENCH_SRC := $(sort $(wildcard bench/cuda/*.c))
CUDA_BENCH_BIN := $(CUDA_BENCH_SRC:bench/cuda/%.c=$(BUILD)/bench/cuda/%)
TOOL_OBJ  := $(TOOL_SRC:%.c=$(BUILD)/%.o)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_BIN := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
LIB       := $(BUILD)/libfqt.a
FQT_BIN   := $(BUILD)/fqt

ifeq ($(V),1)
  Q :=
else
  Q := @
endif

.PHONY: all test test-arm64 test-cuda bench bench-cuda demo fuzz clean info FORCE
all: info fqt

info:
	@echo "fqt: config=$(CONFIG) cc=$(CC) omp=$(USE_OMP) native=$(NATIVE) blas=$(USE_BLAS) cuda=$(USE_CUDA) mpi=$(USE_MPI) nccl=$(USE_NCCL) build=$(BUILD)"
ifeq ($(USE_CUDA),yes)
	@echo "fqt: cuda: nvcc $(NVCC); $(foreach l,cudart cublas cublasLt,$(call cuda_lib_file,$(l)))"
endif
ifeq ($(CUDA_CHECK),yes)
	@echo "fqt: cuda: nvcc $(NVCC) found but not $(CUDA_LIBS_MISSING) (looked in $(CUDA_LIB_DIRS)): the .cu files are compiled, not linked; CPU-only build"
endif

# The CLI lives in the project root for the release build.
fqt: $(FQT_BIN)
ifeq ($(CONFIG),release)
	$(Q)cp $(FQT_BIN) fqt
endif

$(BUILD)/flags: FORCE
	@mkdir -p $(BUILD)
	@echo '$(CC) $(CFLAGS) $(LDLIBS) $(BENCH_CFLAGS) $(BENCH_LDLIBS) $(NVCCFLAGS)' | cmp -s - $@ || echo '$(CC) $(CFLAGS) $(LDLIBS) $(BENCH_CFLAGS) $(BENCH_LDLIBS) $(NVCCFLAGS)' > $@

# Version and commit for `fqt --version` and run.json: regenerated every build, rewritten
# only when they change, so only src/core/version.c recompiles.
FQT_VERSION := $(shell cat VERSION 2>/dev/null || echo unknown)
GIT_COMMIT  := $(shell git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)$(shell git rev-parse HEAD >/dev/null 2>&1 && ! git diff --quiet HEAD -- 2>/dev/null && echo -dirty)
$(BUILD)/gen/fqt_version.h: FORCE
	@mkdir -p $(dir $@)
	@printf '#define FQT_VERSION_STRING "%s"\n#define FQT_GIT_COMMIT "%s"\n' '$(FQT_VERSION)' '$(GIT_COMMIT)' | cmp -s - $@ \
	  || printf '#define FQT_VERSION_STRING "%s"\n#define FQT_GIT_COMMIT "%s"\n' '$(FQT_VERSION)' '$(GIT_COMMIT)' > $@
$(BUILD)/src/core/version.o: $(BUILD)/gen/fqt_version.h
$(BUILD)/src/core/version.o: CFLAGS += -I$(BUILD)/gen

$(BUILD)/%.o: %.c $(BUILD)/flags
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $<")
	$(Q)$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# The NCCL collectives need MPI's headers for the bootstrap.
$(BUILD)/src/dist/nccl.o: NVCCFLAGS += -DFQT_HAVE_MPI -DFQT_HAVE_NCCL $(MPI_CFLAGS)

$(BUILD)/%.o: %.cu $(BUILD)/flags
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  NVCC  $<")
	$(Q)$(NVCC) $(NVCCFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/bench/%.o: bench/%.c $(BUILD)/flags
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC    $<")
	$(Q)$(CC) $(CFLAGS) $(BENCH_CFLAGS) -MMD -MP -c $< -o $@

$(LIB): $(LIB_OBJ)
	@$(if $(Q),echo "  AR    $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(FQT_BIN): $(TOOL_OBJ) $(LIB)
	@$(if $(Q),echo "  LINK  $@")
	$(Q)$(CC) $(CFLAGS) $(TOOL_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	@$(if $(Q),echo "  LINK  $@")
	$(Q)$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -o $@

$(BUILD)/bench/%: $(BUILD)/bench/%.o $(LIB)
	@$(if $(Q),echo "  LINK  $@")
	$(Q)$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) $(BENCH_LDLIBS) -o $@

test: info $(TEST_BIN) fqt $(CUDA_CHECK_OBJ)
	@FQT_BIN=$(abspath $(FQT_BIN)) FQT_SRC=$(CURDIR) FQT_MPI=$(USE_MPI) FQT_TEST_RUNNER='$(TEST_RUNNER)' tests/run.sh $(TEST_BIN)

ARM64_CC ?= aarch64-linux-gnu-gcc
test-arm64:
	$(MAKE) test CC=$(ARM64_CC) BUILD=build/arm64 NATIVE=0 USE_CUDA=no USE_MPI=no USE_NCCL=no \
	    USE_BLAS=no TEST_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"

# The CUDA suite (on a machine with a GPU): tests/cuda/ against the CPU reference, then the
# generic differential harness with the CUDA backend when it exists.
ifeq ($(USE_CUDA),yes)
test-cuda: info $(CUDA_TEST_BIN) $(if $(wildcard tests/test_backend.c),$(BUILD)/tests/test_backend) fqt
	@FQT_BIN=$(abspath $(FQT_BIN)) FQT_SRC=$(CURDIR) tests/run.sh $(CUDA_TEST_BIN)
	$(if $(wildcard tests/test_backend.c),@FQT_BACKEND=cuda FQT_BIN=$(abspath $(FQT_BIN)) FQT_SRC=$(CURDIR) tests/run.sh $(BUILD)/tests/test_backend)
bench-cuda: info $(CUDA_BENCH_BIN)
	@for b in $(CUDA_BENCH_BIN); do echo "== $$b"; $$b || exit 1; done
else
test-cuda bench-cuda:
	$(error $@ needs nvcc (USE_CUDA=yes); this build has cuda=$(USE_CUDA))
endif

bench: info $(BENCH_BIN)

demo: all
	./scripts/demo.sh

# Fuzzing: the library again with clang, ASan+UBSan and libFuzzer coverage, one binary per
# tests/fuzz/fuzz_*.c. Needs clang (Debian: apt-get install clang). Run with OMP_NUM_THREADS=1.
FUZZ_CC     ?= clang
FUZZ_BUILD  := build/fuzz
FUZZ_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -O1 -g -fopenmp \
  -ffp-contract=off -fno-fast-math -Iinclude -Isrc -Itests/fuzz -DFQT_SANITIZE=1 \
  -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -Wno-pass-failed
FUZZ_SRC    := $(sort $(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN    := $(FUZZ_SRC:tests/fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_OBJ    := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)

fuzz: $(FUZZ_BIN)
	@echo "fuzz: built $(notdir $(FUZZ_BIN)) in $(FUZZ_BUILD)"

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZCC $<")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_BUILD)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJ)
	@$(if $(Q),echo "  FUZZLD $@")
	$(Q)$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_OBJ) -lm -o $@

clean:
	rm -rf build fqt

FORCE:
.SECONDARY:

-include $(LIB_OBJ:.o=.d) $(CUDA_CHECK_OBJ:.o=.d) $(TOOL_OBJ:.o=.d) $(TEST_BIN:=.d) $(BENCH_BIN:=.d) $(CUDA_TEST_BIN:=.d) $(CUDA_BENCH_BIN:=.d)
