//! Datasets: `.npy`, `.npz`, image folders and labels.
