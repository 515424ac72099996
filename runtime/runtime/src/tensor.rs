//! Tensors given to and returned by a [`Session`](crate::Session).
use crate::RuntimeError;

/// Element type of a tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DType {
    /// float32: every input, most outputs
    F32,
    /// int64: outputs ONNX defines as int64 (MaxPool indices, shapes a model returns)
    I64,
}

impl DType {
    /// The ONNX spelling (`float32`, `int64`).
    pub fn name(self) -> &'static str {
        match self {
            DType::F32 => "float32",
            DType::I64 => "int64",
        }
    }
}

/// A dense row-major tensor that owns its elements.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// extents
    pub shape: Vec<usize>,
    /// float32 elements (empty for an int64 tensor)
    pub data: Vec<f32>,
    /// int64 elements (empty for a float32 tensor)
    pub ints: Vec<i64>,
    /// which of the two holds the elements
    pub dtype: DType,
}

fn elements(shape: &[usize]) -> Option<usize> {
    shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d))
}

impl Tensor {
    /// A float32 tensor; errors if `data` does not match `shape`.
    pub fn new(shape: Vec<usize>, data: Vec<f32>) -> Result<Self, RuntimeError> {
        if elements(&shape) != Some(data.len()) {
            return Err(RuntimeError::Input(format!(
                "shape {shape:?} does not hold the {} values given",
                data.len()
            )));
        }
        Ok(Tensor {
            shape,
            data,
            ints: vec![],
            dtype: DType::F32,
        })
    }

    /// A tensor holding a copy of `data` in a buffer the runtime allocated (huge pages for
    /// large tensors, which streams markedly faster than a 4 KiB-page `Vec`).
    pub fn from_slice(shape: Vec<usize>, data: &[f32]) -> Result<Self, RuntimeError> {
        Self::new(shape, crate::mem::copied(data)?)
    }

    /// A zero float32 tensor allocated by the runtime.
    pub fn zeros(shape: Vec<usize>) -> Result<Self, RuntimeError> {
        let n = elements(&shape)
            .ok_or_else(|| RuntimeError::Memory(format!("a {shape:?} tensor does not fit")))?;
        Ok(Tensor {
            shape,
            data: crate::mem::zeroed(n)?,
            ints: vec![],
            dtype: DType::F32,
        })
    }

    /// A borrowed view of a float32 tensor's elements (an int64 tensor's view holds none).
    pub fn view(&self) -> TensorView<'_> {
        TensorView {
            shape: &self.shape,
            data: &self.data,
        }
    }

    pub(crate) fn empty() -> Self {
        Tensor {
            shape: vec![],
            data: vec![],
            ints: vec![],
            dtype: DType::F32,
        }
    }
}

/// A float32 input the caller keeps: a shape and the elements, row-major, borrowed for the
/// length of one run (nothing is copied).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TensorView<'a> {
    shape: &'a [usize],
    data: &'a [f32],
}

impl<'a> TensorView<'a> {
    /// A view; errors if `data` does not hold exactly the elements of `shape`.
    pub fn new(shape: &'a [usize], data: &'a [f32]) -> Result<Self, RuntimeError> {
        if elements(shape) != Some(data.len()) {
            return Err(RuntimeError::Input(format!(
                "shape {shape:?} does not hold the {} values given",
                data.len()
            )));
        }
        Ok(TensorView { shape, data })
    }

    /// extents
    pub fn shape(&self) -> &'a [usize] {
        self.shape
    }

    /// elements
    pub fn data(&self) -> &'a [f32] {
        self.data
    }
}

/// A float32 tensor in the memory of the GPU a CUDA model runs on, for
/// [`Session::run_device`](crate::Session::run_device): its device address and its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceTensor<'a> {
    /// the device address of the first element (`CUdeviceptr`)
    pub ptr: u64,
    /// extents, row-major
    pub shape: &'a [usize],
}

/// Anything a session takes as an input: a [`TensorView`] or a [`Tensor`].
pub trait AsTensorView {
    /// The borrowed view the session reads.
    fn as_view(&self) -> TensorView<'_>;
}

impl AsTensorView for TensorView<'_> {
    fn as_view(&self) -> TensorView<'_> {
        *self
    }
}

impl AsTensorView for Tensor {
    fn as_view(&self) -> TensorView<'_> {
        self.view()
    }
}

impl<T: AsTensorView + ?Sized> AsTensorView for &T {
    fn as_view(&self) -> TensorView<'_> {
        (**self).as_view()
    }
}
