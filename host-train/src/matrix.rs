//! A dense `f64` matrix that carries its shape: row-major storage (what
//! the kernel fills row by row in parallel) with faer views for algebra,
//! so no caller recovers a size by division or passes it alongside.

use faer::MatRef;

/// A `rows x cols` matrix, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// All zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            data: vec![0.0; rows * cols],
        }
    }

    /// A matrix from row-major values; `None` unless there are exactly
    /// `rows * cols` of them.
    pub fn from_row_major(rows: usize, cols: usize, data: Vec<f64>) -> Option<Self> {
        (rows.checked_mul(cols) == Some(data.len())).then_some(Self { rows, cols, data })
    }

    /// A row-major copy of a faer matrix.
    pub fn from_mat(m: MatRef<'_, f64>) -> Self {
        let (rows, cols) = (m.nrows(), m.ncols());
        let data = (0..rows)
            .flat_map(|i| (0..cols).map(move |j| m[(i, j)]))
            .collect();
        Self { rows, cols, data }
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Row `i`.
    ///
    /// # Panics
    /// If `i >= rows`, like slice indexing.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.data[i * self.cols..][..self.cols]
    }

    /// Entry `(i, j)`.
    ///
    /// # Panics
    /// If out of range, like slice indexing.
    pub fn get(&self, i: usize, j: usize) -> f64 {
        assert!(j < self.cols, "column {j} of {}", self.cols);
        self.data[i * self.cols + j]
    }

    /// All values, row after row.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// All values, row after row, mutably (the shape stays).
    pub fn as_mut_slice(&mut self) -> &mut [f64] {
        &mut self.data
    }

    /// The values, row after row.
    pub fn into_vec(self) -> Vec<f64> {
        self.data
    }

    /// A faer view, for products and factorisations.
    pub fn view(&self) -> MatRef<'_, f64> {
        MatRef::from_row_major_slice(&self.data, self.rows, self.cols)
    }

    /// Divides every entry by `by`.
    pub fn divide(&mut self, by: f64) {
        self.data.iter_mut().for_each(|v| *v /= by);
    }

    /// The first `cols` columns of every row.
    ///
    /// # Panics
    /// If `cols > self.cols()`.
    pub fn left_columns(&self, cols: usize) -> Self {
        assert!(cols <= self.cols, "{cols} of {} columns", self.cols);
        let data = (0..self.rows)
            .flat_map(|i| self.row(i)[..cols].iter().copied())
            .collect();
        Self {
            rows: self.rows,
            cols,
            data,
        }
    }

    /// The rows `idx`, in that order.
    ///
    /// # Panics
    /// If an index is not a row.
    pub fn select_rows(&self, idx: &[usize]) -> Self {
        let data = idx
            .iter()
            .flat_map(|&i| self.row(i).iter().copied())
            .collect();
        Self {
            rows: idx.len(),
            cols: self.cols,
            data,
        }
    }

    /// The top-left `n x n` block.
    ///
    /// # Panics
    /// If `n` exceeds either dimension.
    pub fn top_left(&self, n: usize) -> Self {
        assert!(n <= self.rows, "{n} of {} rows", self.rows);
        let mut m = self.left_columns(n);
        m.data.truncate(n * n);
        m.rows = n;
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_kept_and_views_agree() {
        let m = Matrix::from_row_major(2, 3, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        assert_eq!((m.rows(), m.cols()), (2, 3));
        assert_eq!(m.row(1), [4.0, 5.0, 6.0]);
        assert_eq!(m.view()[(1, 2)], 6.0);
        assert_eq!(Matrix::from_mat(m.view()), m);
        assert_eq!(m.left_columns(2).as_slice(), [1.0, 2.0, 4.0, 5.0]);
        assert_eq!(m.top_left(2).as_slice(), [1.0, 2.0, 4.0, 5.0]);
        let picked = m.select_rows(&[1, 0, 1]);
        assert_eq!((picked.rows(), picked.cols()), (3, 3));
        assert_eq!(picked.row(0), [4.0, 5.0, 6.0]);
        assert_eq!(picked.row(2), [4.0, 5.0, 6.0]);
        assert!(Matrix::from_row_major(2, 2, vec![0.0; 3]).is_none());
    }
}
