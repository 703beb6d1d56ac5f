// The MO dialect: graph-level tensor ops. Loaded with mlir.dialects.irdl.load_dialects into every
// Context that max creates (max.dialects.mo.load). IRDL ops carry no traits: purity, folding and
// CSE of MO ops are our own Python passes (compiler/passes), and graphs are func.func with a
// `mo.graph` attribute. Shapes and dtypes are checked by the Python builders at build time; this
// file checks operand/result kinds and required attributes.
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
    %t = irdl.base @mo::@tensor
    %any = irdl.any
    irdl.attributes { "value" = %any }
    irdl.operands()
    irdl.results(result: %t)
  }

  // Elementwise unary ops; the result has the operand's shape. `cast` converts to the result dtype.
  irdl.operation @abs {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @exp {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @log {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @log1p {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @sqrt {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @rsqrt {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @tanh {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @sigmoid {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @relu {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @silu {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @sin {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @cos {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @erf {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @floor {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @round {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @trunc {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @negate {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @logical_not {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @is_nan {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @is_inf {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @cast {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  // approximate: "none" (erf), "tanh" or "quick" (x * sigmoid(1.702 x)).
  irdl.operation @gelu {
    %t = irdl.base @mo::@tensor
    %str = irdl.base "#builtin.string"
    irdl.attributes { "approximate" = %str }
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }

  // Elementwise binary ops with numpy broadcasting (result shape = broadcast of the operand shapes;
  // operands share one dtype, comparisons and logical ops return bool). Integer div and mod follow
  // Python's floor semantics.
  irdl.operation @add {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  irdl.operation @sub {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  irdl.operation @mul {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  irdl.operation @div {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  irdl.operation @mod {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  irdl.operation @pow {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  irdl.operation @max {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  irdl.operation @min {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  irdl.operation @equal {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  irdl.operation @not_equal {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  irdl.operation @greater {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  irdl.operation @greater_equal {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  irdl.operation @logical_and {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  irdl.operation @logical_or {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  irdl.operation @logical_xor {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  // Select with numpy broadcasting of the three operands.
  irdl.operation @where {
    %t = irdl.base @mo::@tensor
    irdl.operands(condition: %t, x: %t, y: %t)
    irdl.results(result: %t)
  }

  // [..., M, K] x [..., K, N] -> [..., M, N]; batch dims equal (the builder broadcasts them) or rhs of rank 2.
  irdl.operation @matmul {
    %t = irdl.base @mo::@tensor
    irdl.operands(lhs: %t, rhs: %t)
    irdl.results(result: %t)
  }
  // Same elements, row-major, in the result type's shape.
  irdl.operation @reshape {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  // result dim i = operand dim permutation[i].
  irdl.operation @transpose {
    %t = irdl.base @mo::@tensor
    %ints = irdl.base "#builtin.dense_array"
    irdl.attributes { "permutation" = %ints }
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  // numpy broadcasting to the result type's shape.
  irdl.operation @broadcast_to {
    %t = irdl.base @mo::@tensor
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  // Concatenation along a non-negative `axis`.
  irdl.operation @concat {
    %t = irdl.base @mo::@tensor
    %int = irdl.base "#builtin.integer"
    irdl.attributes { "axis" = %int }
    irdl.operands(inputs: variadic %t)
    irdl.results(result: %t)
  }
  // Per-dim Python slicing x[start:stop:step] (step != 0), resolved against the runtime dim size n
  // exactly as Python's slice(start, stop, step).indices(n) does: negative bounds count from the
  // end and bounds are clamped. A missing bound is INT64_MIN or INT64_MAX (whichever clamps to the
  // end Python would use). The result type's dims are the slice lengths.
  irdl.operation @slice {
    %t = irdl.base @mo::@tensor
    %ints = irdl.base "#builtin.dense_array"
    irdl.attributes { "starts" = %ints, "stops" = %ints, "steps" = %ints }
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  // numpy.take(x, indices, axis); negative indices wrap once; an index outside
  // [-n, n) is a runtime error (the compiled code checks and reports it, never reads out of bounds).
  irdl.operation @gather {
    %t = irdl.base @mo::@tensor
    %int = irdl.base "#builtin.integer"
    irdl.attributes { "axis" = %int }
    irdl.operands(x: %t, indices: %t)
    irdl.results(result: %t)
  }

  // Reductions over one non-negative `axis`, which stays in the result with size 1.
  irdl.operation @reduce_sum {
    %t = irdl.base @mo::@tensor
    %int = irdl.base "#builtin.integer"
    irdl.attributes { "axis" = %int }
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @reduce_mean {
    %t = irdl.base @mo::@tensor
    %int = irdl.base "#builtin.integer"
    irdl.attributes { "axis" = %int }
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @reduce_max {
    %t = irdl.base @mo::@tensor
    %int = irdl.base "#builtin.integer"
    irdl.attributes { "axis" = %int }
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @reduce_min {
    %t = irdl.base @mo::@tensor
    %int = irdl.base "#builtin.integer"
    irdl.attributes { "axis" = %int }
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @argmax {
    %t = irdl.base @mo::@tensor
    %int = irdl.base "#builtin.integer"
    irdl.attributes { "axis" = %int }
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @argmin {
    %t = irdl.base @mo::@tensor
    %int = irdl.base "#builtin.integer"
    irdl.attributes { "axis" = %int }
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  // Normalizations along one non-negative `axis`; the result has the operand's shape.
  irdl.operation @softmax {
    %t = irdl.base @mo::@tensor
    %int = irdl.base "#builtin.integer"
    irdl.attributes { "axis" = %int }
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  irdl.operation @logsoftmax {
    %t = irdl.base @mo::@tensor
    %int = irdl.base "#builtin.integer"
    irdl.attributes { "axis" = %int }
    irdl.operands(x: %t)
    irdl.results(result: %t)
  }
  // Normalizes over the last rank(gamma) dims of x; gamma and beta share a shape.
  irdl.operation @layer_norm {
    %t = irdl.base @mo::@tensor
    %float = irdl.base "#builtin.float"
    irdl.attributes { "epsilon" = %float }
    irdl.operands(x: %t, gamma: %t, beta: %t)
    irdl.results(result: %t)
  }
}
