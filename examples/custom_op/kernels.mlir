// Custom kernels for examples/custom_op/run.py (README, "Custom kernels").

// y = alpha * x + b, on tensors: x and b arrive as tensors (a symbolic dim is `?`), the
// parameter "alpha" as a trailing f32 argument.
#id = affine_map<(i, j) -> (i, j)>
func.func @axpb(%x: tensor<?x4xf32>, %b: tensor<?x4xf32>,
                %alpha: f32 {max.parameter = "alpha"}) -> tensor<?x4xf32> {
  %c0 = arith.constant 0 : index
  %n = tensor.dim %x, %c0 : tensor<?x4xf32>
  %init = tensor.empty(%n) : tensor<?x4xf32>
  %y = linalg.generic {indexing_maps = [#id, #id, #id],
                       iterator_types = ["parallel", "parallel"]}
      ins(%x, %b : tensor<?x4xf32>, tensor<?x4xf32>) outs(%init : tensor<?x4xf32>) {
  ^bb0(%xi: f32, %bi: f32, %out: f32):
    %ax = arith.mulf %alpha, %xi : f32
    %r = arith.addf %ax, %bi : f32
    linalg.yield %r : f32
  } -> tensor<?x4xf32>
  return %y : tensor<?x4xf32>
}

// counter[i] += step, in place: a buffer arrives as a memref the kernel writes.
func.func @increment(%counter: memref<3xi64>, %step: i64 {max.parameter = "step"}) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c3 = arith.constant 3 : index
  scf.for %i = %c0 to %c3 step %c1 {
    %v = memref.load %counter[%i] : memref<3xi64>
    %w = arith.addi %v, %step : i64
    memref.store %w, %counter[%i] : memref<3xi64>
  }
  return
}
