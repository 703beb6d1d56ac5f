// The MO dialect: graph-level tensor ops. Loaded with mlir.dialects.irdl.load_dialects into every
// Context that max creates (max.dialects.mo.load). IRDL ops carry no traits: purity, folding and
// CSE of MO ops are our own Python passes (compiler/passes), and graphs are func.func with a
// `mo.graph` attribute. Shapes and dtypes are checked by the Python builders at build time; this
// file checks operand/result kinds and required attributes. Each operand, result and attribute
// has its own constraint variable: IRDL unifies uses of one variable (they must be equal).
//
// Type parameters:
//   dtype  : an MLIR builtin element type (i1 for bool, si8..si64, ui8..ui64, f16, bf16, f32, f64, f8*)
//   shape  : an array of dims; a dim is an integer, or a string holding a symbol name ("batch") or
//            an algebraic expression over symbols in Python syntax with + - * // ("batch * 2 + 1")
//   device : "cpu:0", "gpu:1", ...
irdl.dialect @mo {
  irdl.type @tensor {
    %dtype = irdl.any
    %shape = irdl.base "#builtin.array"
    %device = irdl.base "#builtin.string"
    irdl.parameters(dtype: %dtype, shape: %shape, device: %device)
  }
  // A mutable tensor in memory, updated in place by side-effecting ops.
  irdl.type @buffer {
    %dtype = irdl.any
    %shape = irdl.base "#builtin.array"
    %device = irdl.base "#builtin.string"
    irdl.parameters(dtype: %dtype, shape: %shape, device: %device)
  }
  // Orders side effects between ops.
  irdl.type @chain {
    irdl.parameters()
  }

  // A constant; `value` is a DenseElementsAttr (or DenseResourceElementsAttr) of the result's static shape.
  irdl.operation @constant {
    %value = irdl.any
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "value" = %value }
    irdl.operands()
    irdl.results(result: %result_type)
  }

  // Elementwise unary ops; the result has the operand's shape. `cast` converts to the result dtype.
  irdl.operation @abs {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @exp {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @log {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @log1p {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @sqrt {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @rsqrt {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @tanh {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @sigmoid {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @relu {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @silu {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @sin {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @cos {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @erf {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @floor {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @round {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @trunc {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @negate {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @logical_not {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @is_nan {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @is_inf {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @cast {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // approximate: "none" (erf), "tanh" or "quick" (x * sigmoid(1.702 x)).
  irdl.operation @gelu {
    %approximate = irdl.base "#builtin.string"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "approximate" = %approximate }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }

  // Elementwise binary ops with numpy broadcasting (result shape = broadcast of the operand shapes;
  // operands share one dtype, comparisons and logical ops return bool). Integer div and mod follow
  // Python's floor semantics.
  irdl.operation @add {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  irdl.operation @sub {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  irdl.operation @mul {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  irdl.operation @div {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  irdl.operation @mod {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  irdl.operation @pow {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  irdl.operation @max {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  irdl.operation @min {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  irdl.operation @equal {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  irdl.operation @not_equal {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  irdl.operation @greater {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  irdl.operation @greater_equal {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  irdl.operation @logical_and {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  irdl.operation @logical_or {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  irdl.operation @logical_xor {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  // Select with numpy broadcasting of the three operands.
  irdl.operation @where {
    %condition = irdl.base @mo::@tensor
    %x = irdl.base @mo::@tensor
    %y = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(condition: %condition, x: %x, y: %y)
    irdl.results(result: %result_type)
  }

  // [..., M, K] x [..., K, N] -> [..., M, N]; batch dims equal (the builder broadcasts them) or rhs of rank 2.
  irdl.operation @matmul {
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  // Same elements, row-major, in the result type's shape.
  irdl.operation @reshape {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // result dim i = operand dim permutation[i].
  irdl.operation @transpose {
    %permutation = irdl.base "#builtin.dense_array"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "permutation" = %permutation }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // numpy broadcasting to the result type's shape.
  irdl.operation @broadcast_to {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // Concatenation of two tensors along a non-negative `axis`. Binary, not variadic: IRDL unifies
  // the types of all operands of one variadic group, so an N-way concat is a chain of N-1.
  irdl.operation @concat {
    %axis = irdl.base "#builtin.integer"
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "axis" = %axis }
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  // Per-dim Python slicing x[start:stop:step] (step != 0), resolved against the runtime dim size n
  // exactly as Python's slice(start, stop, step).indices(n) does: negative bounds count from the
  // end and bounds are clamped. A missing bound is INT64_MIN or INT64_MAX (whichever clamps to the
  // end Python would use). The result type's dims are the slice lengths.
  irdl.operation @slice {
    %starts = irdl.base "#builtin.dense_array"
    %stops = irdl.base "#builtin.dense_array"
    %steps = irdl.base "#builtin.dense_array"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "starts" = %starts, "stops" = %stops, "steps" = %steps }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // numpy.take(x, indices, axis); negative indices wrap once; an index outside
  // [-n, n) is a runtime error (the compiled code checks and reports it, never reads out of bounds).
  irdl.operation @gather {
    %axis = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %indices = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "axis" = %axis }
    irdl.operands(x: %x, indices: %indices)
    irdl.results(result: %result_type)
  }

  // Reductions over one non-negative `axis`, which stays in the result with size 1.
  irdl.operation @reduce_sum {
    %axis = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "axis" = %axis }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @reduce_mean {
    %axis = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "axis" = %axis }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @reduce_max {
    %axis = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "axis" = %axis }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @reduce_min {
    %axis = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "axis" = %axis }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @argmax {
    %axis = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "axis" = %axis }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @argmin {
    %axis = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "axis" = %axis }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // Normalizations along one non-negative `axis`; the result has the operand's shape.
  irdl.operation @softmax {
    %axis = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "axis" = %axis }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @logsoftmax {
    %axis = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "axis" = %axis }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // Normalizes over the last rank(gamma) dims of x; gamma and beta share a shape.
  irdl.operation @layer_norm {
    %epsilon = irdl.base "#builtin.float"
    %x = irdl.base @mo::@tensor
    %gamma = irdl.base @mo::@tensor
    %beta = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "epsilon" = %epsilon }
    irdl.operands(x: %x, gamma: %gamma, beta: %beta)
    irdl.results(result: %result_type)
  }
  // Indexing (opdefs/indexing.py). Indices are untrusted: a negative one counts from the end
  // of its axis once; one outside [-n, n) is a runtime error, never read or written.
  // The int64 positions of a stable sort of x along `axis` (ascending, or descending when
  // `descending` = 1; NaN sorts above every number); the result keeps the first positions,
  // as many as its `axis` dim (at most x's: top-k), the other dims are x's.
  irdl.operation @argsort {
    %axis = irdl.base "#builtin.integer"
    %descending = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "axis" = %axis, "descending" = %descending }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // x indexed by the vectors of the last (static) dim of indices, after `batch_dims` leading
  // dims shared by both: result shape x[:b] + indices[b:-1] + x[b + k:].
  irdl.operation @gather_nd {
    %batch_dims = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %indices = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "batch_dims" = %batch_dims }
    irdl.operands(x: %x, indices: %indices)
    irdl.results(result: %result_type)
  }
  // A copy of x with updates written along `axis` at indices (same shape as updates; the
  // other coordinates are the update's own); the last duplicate in row-major order wins.
  irdl.operation @scatter {
    %axis = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %updates = irdl.base @mo::@tensor
    %indices = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "axis" = %axis }
    irdl.operands(x: %x, updates: %updates, indices: %indices)
    irdl.results(result: %result_type)
  }
  // A copy of x with the slice x[indices[i]] (the first k = indices.shape[-1] coordinates)
  // replaced by updates[i]; the last duplicate in row-major order wins.
  irdl.operation @scatter_nd {
    %x = irdl.base @mo::@tensor
    %updates = irdl.base @mo::@tensor
    %indices = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x, updates: %updates, indices: %indices)
    irdl.results(result: %result_type)
  }
  // x with element i along `axis` repeated repeats[i] times (repeats of shape [1] apply to
  // all); the result's `axis` dim declares the total: repeats that are negative or do not sum
  // to it are a runtime error.
  irdl.operation @repeat_interleave {
    %axis = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %repeats = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "axis" = %axis }
    irdl.operands(x: %x, repeats: %repeats)
    irdl.results(result: %result_type)
  }

  // GGUF block quantization. `encoding` is "q4_0", "q4_1", "q8_0", "q4_k", "q5_k" or "q6_k";
  // a quantized operand is ui8 whose static last dim holds whole blocks of that encoding's
  // byte layout (18, 20, 34, 144, 176, 210 bytes for 32, 32, 32, 256, 256, 256 elements).
  // dequantize: [..., nblocks * bytes] ui8 -> [..., nblocks * elements] f32, bit-exact ggml.
  irdl.operation @dequantize {
    %encoding = irdl.base "#builtin.string"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "encoding" = %encoding }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // qmatmul: lhs [..., M, K] f32 times the transpose of rhs [N, K / elements * bytes] ui8
  // (row n holds weight row n's blocks) -> [..., M, N] f32, dequantizing rhs tile by tile.
  irdl.operation @qmatmul {
    %encoding = irdl.base "#builtin.string"
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "encoding" = %encoding }
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }

  // Sequence ops (dialects/mo/opdefs/sequence.py).
  // Elementwise acos of x clamped to [-1, 1] (MAX: inputs outside the domain are clamped); float.
  irdl.operation @acos {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // Cumulative sum along the non-negative `axis`, in x's dtype; `exclusive` (0/1) starts at 0
  // and leaves out each element itself, `reverse` (0/1) sums from the end.
  irdl.operation @cumsum {
    %axis = irdl.base "#builtin.integer"
    %exclusive = irdl.base "#builtin.integer"
    %reverse = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "axis" = %axis, "exclusive" = %exclusive, "reverse" = %reverse }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // Keeps x[..., m, n] where (num_lower = -1 or m - n <= num_lower) and (num_upper = -1 or
  // n - m <= num_upper), zero elsewhere; `exclude` (0/1) inverts the selection. Rank >= 2.
  irdl.operation @band_part {
    %num_lower = irdl.base "#builtin.integer"
    %num_upper = irdl.base "#builtin.integer"
    %exclude = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "num_lower" = %num_lower, "num_upper" = %num_upper, "exclude" = %exclude }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // Constant padding: `paddings` = [before0, after0, before1, ...] (non-negative); the new
  // elements are the rank-0 `value` (x's dtype).
  irdl.operation @pad {
    %paddings = irdl.base "#builtin.dense_array"
    %x = irdl.base @mo::@tensor
    %value = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "paddings" = %paddings }
    irdl.operands(x: %x, value: %value)
    irdl.results(result: %result_type)
  }
  // result[i] = start + i * step (rank-0 operands of one numeric dtype; floats computed in f64,
  // rounded once). The result's length is declared by its type; the compiled code checks that it
  // is ceil((stop - start) / step) (at least 0) and that step != 0, and reports a mismatch.
  irdl.operation @range {
    %start = irdl.base @mo::@tensor
    %stop = irdl.base @mo::@tensor
    %step = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(start: %start, stop: %stop, step: %step)
    irdl.results(result: %result_type)
  }
  // x with the result type's dims; the compiled code checks each dim that is not provably equal
  // and reports `message` (reads stay within x; a mismatched result is padded with zeros).
  irdl.operation @rebind {
    %message = irdl.base "#builtin.string"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "message" = %message }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // The values of `dims` (a JSON list of dims in the MO type spelling, ["batch", 3]) as a 1-D
  // si64 tensor; symbolic dims are evaluated at run time.
  irdl.operation @shape_to_tensor {
    %dims = irdl.base "#builtin.string"
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "dims" = %dims }
    irdl.operands()
    irdl.results(result: %result_type)
  }
  // Copies of x along each dim: result[i...] = x[i mod d...]; each result dim is a positive
  // multiple of x's (the repeat count), a dim 0 stays 0.
  irdl.operation @tile {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // 2-D convolution: x NHWC, filter RSCF [R, S, C / groups, F]; paddings [top, bottom, left,
  // right] of zeros; result [N, OH, OW, F].
  irdl.operation @conv2d {
    %strides = irdl.base "#builtin.dense_array"
    %dilations = irdl.base "#builtin.dense_array"
    %paddings = irdl.base "#builtin.dense_array"
    %groups = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %filter = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "strides" = %strides, "dilations" = %dilations, "paddings" = %paddings, "groups" = %groups }
    irdl.operands(x: %x, filter: %filter)
    irdl.results(result: %result_type)
  }
  // 3-D convolution: x NDHWC, filter QRSCF [Q, R, S, C / groups, F]; paddings [front, back,
  // top, bottom, left, right] of zeros; result [N, OD, OH, OW, F].
  irdl.operation @conv3d {
    %strides = irdl.base "#builtin.dense_array"
    %dilations = irdl.base "#builtin.dense_array"
    %paddings = irdl.base "#builtin.dense_array"
    %groups = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %filter = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "strides" = %strides, "dilations" = %dilations, "paddings" = %paddings, "groups" = %groups }
    irdl.operands(x: %x, filter: %filter)
    irdl.results(result: %result_type)
  }
  // Transposed 2-D convolution (the gradient of mo.conv2d by its input): x NHWC, filter
  // [R, S, F, C]; each input pixel scatters x @ filter^T with stride and dilation, and the
  // paddings [top, bottom, left, right] crop the result: [N, OH, OW, F].
  irdl.operation @conv2d_transpose {
    %strides = irdl.base "#builtin.dense_array"
    %dilations = irdl.base "#builtin.dense_array"
    %paddings = irdl.base "#builtin.dense_array"
    %x = irdl.base @mo::@tensor
    %filter = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "strides" = %strides, "dilations" = %dilations, "paddings" = %paddings }
    irdl.operands(x: %x, filter: %filter)
    irdl.results(result: %result_type)
  }
  // col2im: x [N, C * kh * kw, L] holds L = BH * BW sliding blocks; each block's values are
  // added at its window of the [N, C, output_size] result (paddings as in mo.max_pool2d).
  irdl.operation @fold {
    %output_size = irdl.base "#builtin.dense_array"
    %kernel = irdl.base "#builtin.dense_array"
    %strides = irdl.base "#builtin.dense_array"
    %dilations = irdl.base "#builtin.dense_array"
    %paddings = irdl.base "#builtin.dense_array"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "output_size" = %output_size, "kernel" = %kernel, "strides" = %strides, "dilations" = %dilations, "paddings" = %paddings }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // Max over each window of x (NHWC); padding never wins; ceil_mode 0/1 rounds the window
  // count up (a last window starting in the bottom/right padding is dropped).
  irdl.operation @max_pool2d {
    %kernel = irdl.base "#builtin.dense_array"
    %strides = irdl.base "#builtin.dense_array"
    %dilations = irdl.base "#builtin.dense_array"
    %paddings = irdl.base "#builtin.dense_array"
    %ceil_mode = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "kernel" = %kernel, "strides" = %strides, "dilations" = %dilations, "paddings" = %paddings, "ceil_mode" = %ceil_mode }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // Mean over each window of x (NHWC); count_boundary 1 counts the zero padding in the
  // divisor, 0 only the input elements.
  irdl.operation @avg_pool2d {
    %kernel = irdl.base "#builtin.dense_array"
    %strides = irdl.base "#builtin.dense_array"
    %dilations = irdl.base "#builtin.dense_array"
    %paddings = irdl.base "#builtin.dense_array"
    %ceil_mode = irdl.base "#builtin.integer"
    %count_boundary = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "kernel" = %kernel, "strides" = %strides, "dilations" = %dilations, "paddings" = %paddings, "ceil_mode" = %ceil_mode, "count_boundary" = %count_boundary }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // Bicubic resampling of the spatial dims of x (NCHW) to the result's H and W (PyTorch's
  // bicubic, align_corners false: Keys' kernel with A = -0.75, reads clamped to the edge).
  irdl.operation @resize_bicubic {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }

  // Control flow. IRDL ops hold no regions: the bodies are further func.func of the module
  // (subgraphs, without mo.graph) named by symbol attributes; values a body uses from the
  // enclosing graph are passed explicitly as operands (the callee's trailing arguments).
  // If the bool scalar `pred` is true, the results of @then_fn(args...), else of
  // @else_fn(args...); both take the args and return the result types.
  // Operands and results are split into up to 16 variadic groups (args0..args15,
  // res0..res15; operandSegmentSizes/resultSegmentSizes): IRDL unifies the types within one
  // group, so each group is a run of equal types; the callees see the concatenation.
  // An arg is a !mo.tensor or a !mo.buffer the body reads or writes (irdl.any: IRDL's
  // any_of of the two aborts the loader; the MO verifier checks the kind).
  irdl.operation @cond {
    %then_fn = irdl.base "#builtin.symbol_ref"
    %else_fn = irdl.base "#builtin.symbol_ref"
    %pred = irdl.base @mo::@tensor
    %args0 = irdl.any
    %args1 = irdl.any
    %args2 = irdl.any
    %args3 = irdl.any
    %args4 = irdl.any
    %args5 = irdl.any
    %args6 = irdl.any
    %args7 = irdl.any
    %args8 = irdl.any
    %args9 = irdl.any
    %args10 = irdl.any
    %args11 = irdl.any
    %args12 = irdl.any
    %args13 = irdl.any
    %args14 = irdl.any
    %args15 = irdl.any
    %res0 = irdl.base @mo::@tensor
    %res1 = irdl.base @mo::@tensor
    %res2 = irdl.base @mo::@tensor
    %res3 = irdl.base @mo::@tensor
    %res4 = irdl.base @mo::@tensor
    %res5 = irdl.base @mo::@tensor
    %res6 = irdl.base @mo::@tensor
    %res7 = irdl.base @mo::@tensor
    %res8 = irdl.base @mo::@tensor
    %res9 = irdl.base @mo::@tensor
    %res10 = irdl.base @mo::@tensor
    %res11 = irdl.base @mo::@tensor
    %res12 = irdl.base @mo::@tensor
    %res13 = irdl.base @mo::@tensor
    %res14 = irdl.base @mo::@tensor
    %res15 = irdl.base @mo::@tensor
    irdl.attributes { "then_fn" = %then_fn, "else_fn" = %else_fn }
    irdl.operands(pred: %pred, args0: variadic %args0, args1: variadic %args1, args2: variadic %args2, args3: variadic %args3, args4: variadic %args4, args5: variadic %args5, args6: variadic %args6, args7: variadic %args7, args8: variadic %args8, args9: variadic %args9, args10: variadic %args10, args11: variadic %args11, args12: variadic %args12, args13: variadic %args13, args14: variadic %args14, args15: variadic %args15)
    irdl.results(res0: variadic %res0, res1: variadic %res1, res2: variadic %res2, res3: variadic %res3, res4: variadic %res4, res5: variadic %res5, res6: variadic %res6, res7: variadic %res7, res8: variadic %res8, res9: variadic %res9, res10: variadic %res10, res11: variadic %res11, res12: variadic %res12, res13: variadic %res13, res14: variadic %res14, res15: variadic %res15)
  }
  // Loop on carried values: the first `num_carried` args start the loop; while
  // @pred_fn(carried..., rest...) returns true, carried = @body_fn(carried..., rest...).
  // The results are the final carried values (the rest of the args are loop invariants).
  // Operands and results are split into up to 16 variadic groups (args0..args15,
  // res0..res15; operandSegmentSizes/resultSegmentSizes): IRDL unifies the types within one
  // group, so each group is a run of equal types; the callees see the concatenation.
  irdl.operation @while {
    %pred_fn = irdl.base "#builtin.symbol_ref"
    %body_fn = irdl.base "#builtin.symbol_ref"
    %num_carried = irdl.base "#builtin.integer"
    %args0 = irdl.any
    %args1 = irdl.any
    %args2 = irdl.any
    %args3 = irdl.any
    %args4 = irdl.any
    %args5 = irdl.any
    %args6 = irdl.any
    %args7 = irdl.any
    %args8 = irdl.any
    %args9 = irdl.any
    %args10 = irdl.any
    %args11 = irdl.any
    %args12 = irdl.any
    %args13 = irdl.any
    %args14 = irdl.any
    %args15 = irdl.any
    %res0 = irdl.base @mo::@tensor
    %res1 = irdl.base @mo::@tensor
    %res2 = irdl.base @mo::@tensor
    %res3 = irdl.base @mo::@tensor
    %res4 = irdl.base @mo::@tensor
    %res5 = irdl.base @mo::@tensor
    %res6 = irdl.base @mo::@tensor
    %res7 = irdl.base @mo::@tensor
    %res8 = irdl.base @mo::@tensor
    %res9 = irdl.base @mo::@tensor
    %res10 = irdl.base @mo::@tensor
    %res11 = irdl.base @mo::@tensor
    %res12 = irdl.base @mo::@tensor
    %res13 = irdl.base @mo::@tensor
    %res14 = irdl.base @mo::@tensor
    %res15 = irdl.base @mo::@tensor
    irdl.attributes { "pred_fn" = %pred_fn, "body_fn" = %body_fn, "num_carried" = %num_carried }
    irdl.operands(args0: variadic %args0, args1: variadic %args1, args2: variadic %args2, args3: variadic %args3, args4: variadic %args4, args5: variadic %args5, args6: variadic %args6, args7: variadic %args7, args8: variadic %args8, args9: variadic %args9, args10: variadic %args10, args11: variadic %args11, args12: variadic %args12, args13: variadic %args13, args14: variadic %args14, args15: variadic %args15)
    irdl.results(res0: variadic %res0, res1: variadic %res1, res2: variadic %res2, res3: variadic %res3, res4: variadic %res4, res5: variadic %res5, res6: variadic %res6, res7: variadic %res7, res8: variadic %res8, res9: variadic %res9, res10: variadic %res10, res11: variadic %res11, res12: variadic %res12, res13: variadic %res13, res14: variadic %res14, res15: variadic %res15)
  }
  // The results of the subgraph @callee applied to args.
  // Operands and results are split into up to 16 variadic groups (args0..args15,
  // res0..res15; operandSegmentSizes/resultSegmentSizes): IRDL unifies the types within one
  // group, so each group is a run of equal types; the callees see the concatenation.
  irdl.operation @call {
    %callee = irdl.base "#builtin.symbol_ref"
    %args0 = irdl.any
    %args1 = irdl.any
    %args2 = irdl.any
    %args3 = irdl.any
    %args4 = irdl.any
    %args5 = irdl.any
    %args6 = irdl.any
    %args7 = irdl.any
    %args8 = irdl.any
    %args9 = irdl.any
    %args10 = irdl.any
    %args11 = irdl.any
    %args12 = irdl.any
    %args13 = irdl.any
    %args14 = irdl.any
    %args15 = irdl.any
    %res0 = irdl.base @mo::@tensor
    %res1 = irdl.base @mo::@tensor
    %res2 = irdl.base @mo::@tensor
    %res3 = irdl.base @mo::@tensor
    %res4 = irdl.base @mo::@tensor
    %res5 = irdl.base @mo::@tensor
    %res6 = irdl.base @mo::@tensor
    %res7 = irdl.base @mo::@tensor
    %res8 = irdl.base @mo::@tensor
    %res9 = irdl.base @mo::@tensor
    %res10 = irdl.base @mo::@tensor
    %res11 = irdl.base @mo::@tensor
    %res12 = irdl.base @mo::@tensor
    %res13 = irdl.base @mo::@tensor
    %res14 = irdl.base @mo::@tensor
    %res15 = irdl.base @mo::@tensor
    irdl.attributes { "callee" = %callee }
    irdl.operands(args0: variadic %args0, args1: variadic %args1, args2: variadic %args2, args3: variadic %args3, args4: variadic %args4, args5: variadic %args5, args6: variadic %args6, args7: variadic %args7, args8: variadic %args8, args9: variadic %args9, args10: variadic %args10, args11: variadic %args11, args12: variadic %args12, args13: variadic %args13, args14: variadic %args14, args15: variadic %args15)
    irdl.results(res0: variadic %res0, res1: variadic %res1, res2: variadic %res2, res3: variadic %res3, res4: variadic %res4, res5: variadic %res5, res6: variadic %res6, res7: variadic %res7, res8: variadic %res8, res9: variadic %res9, res10: variadic %res10, res11: variadic %res11, res12: variadic %res12, res13: variadic %res13, res14: variadic %res14, res15: variadic %res15)
  }

  // Buffers (!mo.buffer): mutable memory. A graph is one block and side effects take effect in
  // program order (no !mo.chain operands): a load sees every store before it.
  // A new buffer of the result type (its contents undefined until stored).
  irdl.operation @buffer_create {
    %result_type = irdl.base @mo::@buffer
    irdl.operands()
    irdl.results(result: %result_type)
  }
  // A copy of the buffer's current contents, as an immutable tensor of the same type.
  irdl.operation @buffer_load {
    %buffer = irdl.base @mo::@buffer
    %result_type = irdl.base @mo::@tensor
    irdl.operands(buffer: %buffer)
    irdl.results(result: %result_type)
  }
  // buffer[...] = x (x has the buffer's type); no result.
  irdl.operation @buffer_store {
    %buffer = irdl.base @mo::@buffer
    %x = irdl.base @mo::@tensor
    irdl.operands(buffer: %buffer, x: %x)
    irdl.results()
  }
  // buffer[starts[i] : starts[i] + x.shape[i] * steps[i] : steps[i], ...] = x; starts >= 0,
  // steps >= 1, the window inside the buffer (checked by the MO verifier); no result.
  irdl.operation @buffer_store_slice {
    %starts = irdl.base "#builtin.dense_array"
    %steps = irdl.base "#builtin.dense_array"
    %buffer = irdl.base @mo::@buffer
    %x = irdl.base @mo::@tensor
    irdl.attributes { "starts" = %starts, "steps" = %steps }
    irdl.operands(buffer: %buffer, x: %x)
    irdl.results()
  }

  // Writes `label` and, when `values` is 1, x's elements in row-major order as "[e0, e1]"
  // and a newline to standard output when it runs; no result (an effect, never removed).
  irdl.operation @print {
    %label = irdl.base "#builtin.string"
    %values = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    irdl.attributes { "label" = %label, "values" = %values }
    irdl.operands(x: %x)
    irdl.results()
  }
  // x copied onto the result type's device (same dtype and shape).
  irdl.operation @transfer {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  // The weight named `name`, supplied when the model is loaded (InferenceSession.load's
  // weights_registry); the result type (static dims) is the weight's. Ops of one name share
  // one weight; the compile worker turns them into one trailing graph argument.
  irdl.operation @constant_external {
    %name = irdl.base "#builtin.string"
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "name" = %name }
    irdl.operands()
    irdl.results(result: %result_type)
  }
  // The indices of the non-zero elements of x (NaN counts as non-zero), one row of rank(x)
  // si64 per element in row-major order: [count, rank]. A count dim that is a new symbol is
  // bound by this op when it runs (a size only the data determines); a bound one is checked.
  irdl.operation @nonzero {
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }

  // GPTQ (dialects/mo/opdefs/gptq.py): x/rhs is MAX's packed ui8 [K/2 + 2K/group_size, N],
  // uint32 [K/8, N] of 4-bit codes along K then f16 scales [K/group_size, N]; symmetric, zero
  // point 8. dequantize -> [K, N] f32; qmatmul: lhs [..., M, K] f32 @ W -> [..., M, N] f32,
  // dequantizing W tile by tile. _perm forms: row p of W is scales[p // group] * (code[perm[p]] - 8).
  irdl.operation @gptq_dequantize {
    %group_size = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "group_size" = %group_size }
    irdl.operands(x: %x)
    irdl.results(result: %result_type)
  }
  irdl.operation @gptq_dequantize_perm {
    %group_size = irdl.base "#builtin.integer"
    %x = irdl.base @mo::@tensor
    %perm = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "group_size" = %group_size }
    irdl.operands(x: %x, perm: %perm)
    irdl.results(result: %result_type)
  }
  irdl.operation @gptq_qmatmul {
    %group_size = irdl.base "#builtin.integer"
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "group_size" = %group_size }
    irdl.operands(lhs: %lhs, rhs: %rhs)
    irdl.results(result: %result_type)
  }
  irdl.operation @gptq_qmatmul_perm {
    %group_size = irdl.base "#builtin.integer"
    %lhs = irdl.base @mo::@tensor
    %rhs = irdl.base @mo::@tensor
    %perm = irdl.base @mo::@tensor
    %result_type = irdl.base @mo::@tensor
    irdl.attributes { "group_size" = %group_size }
    irdl.operands(lhs: %lhs, rhs: %rhs, perm: %perm)
    irdl.results(result: %result_type)
  }

  // The results of the user kernel `symbol` (a func.func of a .mlir file given at load:
  // InferenceSession(custom_extensions=...)) applied to args, then `parameters` (a JSON object
  // of names to bools, ints and floats, passed as the kernel's arguments that carry
  // {max.parameter = "name"}). Buffer args are memref arguments the kernel may write.
  // Operands and results are split into up to 16 variadic groups (args0..args15,
  // res0..res15; operandSegmentSizes/resultSegmentSizes), each a run of equal types. An
  // operand is an !mo.tensor or an !mo.buffer (IRDL's any_of of the two could not be loaded:
  // the MO verifier checks the kinds).
  irdl.operation @custom {
    %symbol = irdl.base "#builtin.string"
    %parameters = irdl.base "#builtin.string"
    %args0 = irdl.any
    %args1 = irdl.any
    %args2 = irdl.any
    %args3 = irdl.any
    %args4 = irdl.any
    %args5 = irdl.any
    %args6 = irdl.any
    %args7 = irdl.any
    %args8 = irdl.any
    %args9 = irdl.any
    %args10 = irdl.any
    %args11 = irdl.any
    %args12 = irdl.any
    %args13 = irdl.any
    %args14 = irdl.any
    %args15 = irdl.any
    %res0 = irdl.base @mo::@tensor
    %res1 = irdl.base @mo::@tensor
    %res2 = irdl.base @mo::@tensor
    %res3 = irdl.base @mo::@tensor
    %res4 = irdl.base @mo::@tensor
    %res5 = irdl.base @mo::@tensor
    %res6 = irdl.base @mo::@tensor
    %res7 = irdl.base @mo::@tensor
    %res8 = irdl.base @mo::@tensor
    %res9 = irdl.base @mo::@tensor
    %res10 = irdl.base @mo::@tensor
    %res11 = irdl.base @mo::@tensor
    %res12 = irdl.base @mo::@tensor
    %res13 = irdl.base @mo::@tensor
    %res14 = irdl.base @mo::@tensor
    %res15 = irdl.base @mo::@tensor
    irdl.attributes { "symbol" = %symbol, "parameters" = %parameters }
    irdl.operands(args0: variadic %args0, args1: variadic %args1, args2: variadic %args2, args3: variadic %args3, args4: variadic %args4, args5: variadic %args5, args6: variadic %args6, args7: variadic %args7, args8: variadic %args8, args9: variadic %args9, args10: variadic %args10, args11: variadic %args11, args12: variadic %args12, args13: variadic %args13, args14: variadic %args14, args15: variadic %args15)
    irdl.results(res0: variadic %res0, res1: variadic %res1, res2: variadic %res2, res3: variadic %res3, res4: variadic %res4, res5: variadic %res5, res6: variadic %res6, res7: variadic %res7, res8: variadic %res8, res9: variadic %res9, res10: variadic %res10, res11: variadic %res11, res12: variadic %res12, res13: variadic %res13, res14: variadic %res14, res15: variadic %res15)
  }
}
