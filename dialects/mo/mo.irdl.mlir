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
}
