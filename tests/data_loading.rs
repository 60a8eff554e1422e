//! Dataset loading from files written here with numpy-compatible writers.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use image::{GrayImage, Luma, Rgb, RgbImage};
use ndarray::{array, ArrayD, IxDyn};
use ndarray_npy::{write_npy, NpzReader, NpzWriter, WriteNpyExt};
use qdbg::data::{
    load_dataset, load_labels, write_npz_atomic, ChannelOrder, ImageOptions, InputSpec, SampleArray,
};
use qdbg::graph::DType;
use tempfile::TempDir;

fn spec(name: &str, shape: &[usize], dtype: DType) -> InputSpec {
    InputSpec {
        name: name.to_string(),
        shape: shape.to_vec(),
        dtype,
    }
}

fn arr<T>(shape: &[usize], values: Vec<T>) -> ArrayD<T> {
    ArrayD::from_shape_vec(IxDyn(shape), values).unwrap()
}

fn f32s(a: &SampleArray) -> (Vec<usize>, Vec<f32>) {
    match a {
        SampleArray::F32(a) => (a.shape().to_vec(), a.iter().copied().collect()),
        other => panic!("expected float32, got {:?}", other.dtype()),
    }
}

fn assert_close(got: &[f32], want: &[f32]) {
    assert_eq!(got.len(), want.len(), "{got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-6, "{got:?} vs {want:?}");
    }
}

fn write_npz(path: &Path, arrays: &[(&str, &ArrayD<f32>)]) {
    let mut npz = NpzWriter::new(File::create(path).unwrap());
    for (name, a) in arrays {
        npz.add_array(*name, *a).unwrap();
    }
    npz.finish().unwrap();
}

/// Asserts the error text names every one of `parts`.
fn err_text(result: qdbg::Result<impl std::fmt::Debug>, parts: &[&str]) -> String {
    let msg = result.expect_err("expected an error").to_string();
    for part in parts {
        assert!(msg.contains(part), "'{part}' missing from: {msg}");
    }
    msg
}

fn names(ds: &qdbg::data::Dataset) -> Vec<String> {
    ds.input_names().map(str::to_string).collect()
}

/// Input `k`'s samples as the dataset keeps them, stacked again along the sample axis.
fn whole(ds: &qdbg::data::Dataset, k: usize) -> SampleArray {
    let samples: Vec<SampleArray> = (0..ds.num_samples())
        .map(|i| ds.stored_sample(k, i).unwrap())
        .collect();
    macro_rules! stack {
        ($variant:ident) => {{
            let views: Vec<_> = samples
                .iter()
                .map(|s| match s {
                    SampleArray::$variant(a) => a.view(),
                    other => panic!("mixed dtypes: {other:?}"),
                })
                .collect();
            SampleArray::$variant(ndarray::concatenate(ndarray::Axis(0), &views).unwrap())
        }};
    }
    match &samples[0] {
        SampleArray::F32(_) => stack!(F32),
        SampleArray::I32(_) => stack!(I32),
        SampleArray::I64(_) => stack!(I64),
        SampleArray::U8(_) => stack!(U8),
        SampleArray::I8(_) => stack!(I8),
    }
}

fn load(path: &Path, specs: &[InputSpec]) -> qdbg::Result<qdbg::data::Dataset> {
    load_dataset(path, specs, &ImageOptions::default())
}

// ---------- .npy ----------

#[test]
fn npy_float32_samples_come_back_with_the_batch_dim() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("data.npy");
    write_npy(&path, &arr(&[3, 2], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0])).unwrap();

    let ds = load(&path, &[spec("x", &[1, 2], DType::F32)]).unwrap();
    assert_eq!(ds.num_samples(), 3);
    assert_eq!(ds.source, path);
    assert_eq!(names(&ds)[0], "x");
    assert_eq!(ds.stored(0).unwrap().1, [3, 2]);
    let s = ds.sample(2).unwrap();
    assert_eq!(s.len(), 1);
    assert_eq!(f32s(&s[0]), (vec![1, 2], vec![5.0, 6.0]));
}

#[test]
fn npy_samples_that_carry_their_own_batch_dim() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("data.npy");
    // Two samples, each already [1, 3].
    write_npy(
        &path,
        &arr(&[2, 1, 3], vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]),
    )
    .unwrap();

    let ds = load(&path, &[spec("x", &[1, 3], DType::F32)]).unwrap();
    assert_eq!(ds.num_samples(), 2);
    assert_eq!(ds.stored(0).unwrap().1, [2, 3]);
    assert_eq!(
        f32s(&ds.sample(1).unwrap()[0]),
        (vec![1, 3], vec![4.0, 5.0, 6.0])
    );
}

#[test]
fn npy_for_an_input_without_batch_dim() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("data.npy");
    write_npy(&path, &arr(&[2, 3], vec![1i32, 2, 3, 4, 5, 6])).unwrap();

    let ds = load(&path, &[spec("ids", &[3], DType::I32)]).unwrap();
    assert_eq!(
        ds.sample(0).unwrap(),
        vec![SampleArray::I32(arr(&[3], vec![1, 2, 3]))]
    );
}

#[test]
fn float64_becomes_float32() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("f64.npy");
    write_npy(&path, &arr(&[2, 2], vec![0.5f64, -1.25, 0.1, 3.0])).unwrap();

    let ds = load(&path, &[spec("x", &[1, 2], DType::F32)]).unwrap();
    assert_eq!(ds.stored(0).unwrap().0, DType::F32);
    // 0.1 is the one value float32 cannot hold exactly; it rounds to the nearest float32.
    assert_eq!(f32s(&whole(&ds, 0)).1, vec![0.5, -1.25, 0.1f32, 3.0]);
}

#[test]
fn int64_becomes_int32_when_every_value_fits() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("ids.npy");
    write_npy(&path, &arr(&[2, 2], vec![7i64, -3, 2_147_483_647, 0])).unwrap();
    let ds = load(&path, &[spec("ids", &[1, 2], DType::I32)]).unwrap();
    assert_eq!(
        whole(&ds, 0),
        SampleArray::I32(arr(&[2, 2], vec![7, -3, 2_147_483_647, 0]))
    );

    // 2^31 at sample 1, position 0 does not fit.
    write_npy(&path, &arr(&[2, 2], vec![7i64, -3, 2_147_483_648, 0])).unwrap();
    err_text(
        load(&path, &[spec("ids", &[1, 2], DType::I32)]),
        &[
            "ids.npy",
            "'ids'",
            "2147483648",
            "[1, 0]",
            "sample 1",
            "int32",
        ],
    );
}

#[test]
fn uint8_and_int8_inputs_take_matching_arrays() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("q.npy");
    write_npy(&path, &arr(&[1, 2], vec![-128i8, 127])).unwrap();
    let ds = load(&path, &[spec("q", &[1, 2], DType::I8)]).unwrap();
    assert_eq!(
        ds.sample(0).unwrap(),
        vec![SampleArray::I8(arr(&[1, 2], vec![-128, 127]))]
    );
}

#[test]
fn wrong_shape_names_file_input_and_both_shapes() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("data.npy");
    write_npy(&path, &ArrayD::<f32>::zeros(IxDyn(&[4, 3, 2, 2]))).unwrap();
    let msg = err_text(
        load(&path, &[spec("image", &[1, 2, 2, 3], DType::F32)]),
        &[
            "data.npy",
            "'image'",
            "[N, 2, 2, 3] float32",
            "[4, 3, 2, 2] float32",
        ],
    );
    assert!(msg.contains("transpose"), "{msg}");
}

#[test]
fn wrong_dtype_names_file_input_and_both_dtypes() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("data.npy");
    write_npy(&path, &ArrayD::<f32>::zeros(IxDyn(&[2, 4]))).unwrap();
    let msg = err_text(
        load(&path, &[spec("q_in", &[1, 4], DType::I8)]),
        &["data.npy", "'q_in'", "[N, 4] int8", "[2, 4] float32"],
    );
    assert!(msg.contains("quantized"), "{msg}");
}

#[test]
fn npy_cannot_feed_two_inputs() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("data.npy");
    write_npy(&path, &ArrayD::<f32>::zeros(IxDyn(&[2, 4]))).unwrap();
    err_text(
        load(
            &path,
            &[
                spec("a", &[1, 4], DType::F32),
                spec("b", &[1, 4], DType::F32),
            ],
        ),
        &["data.npy", "'a'", "'b'", ".npz"],
    );
}

#[test]
fn empty_array_is_an_empty_dataset() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("empty.npy");
    write_npy(&path, &ArrayD::<f32>::zeros(IxDyn(&[0, 4]))).unwrap();
    err_text(
        load(&path, &[spec("x", &[1, 4], DType::F32)]),
        &["empty.npy", "'x'", "empty dataset", "[0, 4]"],
    );
}

#[test]
fn nan_and_inf_name_the_first_bad_sample() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("nan.npy");
    let values = vec![0.0f32, 1.0, 2.0, f32::NAN, 4.0, f32::INFINITY];
    write_npy(&path, &arr(&[3, 2], values)).unwrap();
    err_text(
        load(&path, &[spec("x", &[1, 2], DType::F32)]),
        &["nan.npy", "'x'", "sample 1", "NaN", "2 of 3 samples"],
    );

    // A float64 value float32 cannot hold would turn into Inf.
    write_npy(&path, &arr(&[2, 1], vec![1.0f64, 1e300])).unwrap();
    err_text(
        load(&path, &[spec("x", &[1, 1], DType::F32)]),
        &["nan.npy", "'x'", "sample 1", "float32's range"],
    );
}

#[test]
fn truncated_npy_is_reported_not_allocated() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("cut.npy");
    write_npy(&path, &ArrayD::<f32>::zeros(IxDyn(&[10, 4]))).unwrap();
    let bytes = fs::read(&path).unwrap();
    fs::write(&path, &bytes[..bytes.len() - 7]).unwrap();
    err_text(
        load(&path, &[spec("x", &[1, 4], DType::F32)]),
        &["cut.npy", "'x'", "truncated", "[10, 4] float32"],
    );

    // Cut inside the header.
    fs::write(&path, &bytes[..20]).unwrap();
    err_text(
        load(&path, &[spec("x", &[1, 4], DType::F32)]),
        &["cut.npy", "'x'", "truncated"],
    );
}

// ---------- .npz ----------

#[test]
fn npz_matches_arrays_to_inputs_by_name() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("data.npz");
    let ids = arr(&[2, 3], vec![1i64, 2, 3, 4, 5, 6]);
    // Written by hand so that one key lacks numpy's `.npy` suffix.
    let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("ids", stored).unwrap();
    let mut bytes = Vec::new();
    ids.write_npy(&mut bytes).unwrap();
    zip.write_all(&bytes).unwrap();
    zip.start_file("pixels.npy", stored).unwrap();
    let mut bytes = Vec::new();
    arr(&[2, 2], vec![0.5f32, 1.5, 2.5, 3.5])
        .write_npy(&mut bytes)
        .unwrap();
    zip.write_all(&bytes).unwrap();
    zip.finish().unwrap();

    // Model order differs from archive order.
    let specs = [
        spec("pixels", &[1, 2], DType::F32),
        spec("ids", &[1, 3], DType::I64),
    ];
    let ds = load(&path, &specs).unwrap();
    assert_eq!(ds.num_samples(), 2);
    assert_eq!(names(&ds)[0], "pixels");
    assert_eq!(names(&ds)[1], "ids");
    assert_eq!(
        ds.sample(1).unwrap(),
        vec![
            SampleArray::F32(arr(&[1, 2], vec![2.5, 3.5])),
            SampleArray::I64(arr(&[1, 3], vec![4, 5, 6])),
        ]
    );
}

#[test]
fn npz_missing_input_lists_expected_and_found_names() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("data.npz");
    let a = ArrayD::<f32>::zeros(IxDyn(&[2, 4]));
    write_npz(&path, &[("input_1", &a)]);
    let msg = err_text(
        load(
            &path,
            &[
                spec("input_1", &[1, 4], DType::F32),
                spec("mask", &[1, 4], DType::F32),
            ],
        ),
        &["data.npz", "'mask'", "'input_1', 'mask'", "holds 'input_1'"],
    );
    assert!(msg.contains("no array for model input"), "{msg}");

    // One wrong name: suggest the rename.
    err_text(
        load(&path, &[spec("serving_default_x:0", &[1, 4], DType::F32)]),
        &[
            "data.npz",
            "'serving_default_x:0'",
            "rename 'input_1' to 'serving_default_x:0'",
        ],
    );
}

#[test]
fn npz_extra_arrays_are_named() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("data.npz");
    let a = ArrayD::<f32>::zeros(IxDyn(&[2, 4]));
    write_npz(&path, &[("x", &a), ("labels", &a)]);
    err_text(
        load(&path, &[spec("x", &[1, 4], DType::F32)]),
        &["data.npz", "'labels'", "match no model input", "'x'"],
    );
}

#[test]
fn npz_key_present_with_and_without_suffix_is_ambiguous() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("dup.npz");
    let mut bytes = Vec::new();
    arr(&[1, 1], vec![1.0f32]).write_npy(&mut bytes).unwrap();
    let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for name in ["x", "x.npy"] {
        zip.start_file(name, stored).unwrap();
        zip.write_all(&bytes).unwrap();
    }
    zip.finish().unwrap();
    err_text(
        load(&path, &[spec("x", &[1, 1], DType::F32)]),
        &["dup.npz", "'x'", "'x.npy'"],
    );
}

#[test]
fn npz_errors_name_the_array_and_input() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("data.npz");
    let good = ArrayD::<f32>::zeros(IxDyn(&[2, 4]));
    let bad = ArrayD::<f32>::zeros(IxDyn(&[2, 5]));
    write_npz(&path, &[("a", &good), ("b", &bad)]);
    let specs = [
        spec("a", &[1, 4], DType::F32),
        spec("b", &[1, 4], DType::F32),
    ];
    err_text(
        load(&path, &specs),
        &[
            "data.npz",
            "array 'b'",
            "'b'",
            "[N, 4] float32",
            "[2, 5] float32",
        ],
    );

    // Different sample counts per input.
    let three = ArrayD::<f32>::zeros(IxDyn(&[3, 4]));
    write_npz(&path, &[("a", &good), ("b", &three)]);
    err_text(load(&path, &specs), &["data.npz", "'a' has 2", "'b' has 3"]);
}

#[test]
fn not_a_zip_is_an_error() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("junk.npz");
    fs::write(&path, b"definitely not a zip archive").unwrap();
    err_text(
        load(&path, &[spec("x", &[1], DType::F32)]),
        &["junk.npz", "zip"],
    );
}

#[test]
fn missing_file_and_unknown_extension() {
    let dir = TempDir::new().unwrap();
    let specs = [spec("x", &[1], DType::F32)];
    err_text(load(&dir.path().join("nope.npy"), &specs), &["nope.npy"]);
    let csv = dir.path().join("data.csv");
    fs::write(&csv, "1,2,3").unwrap();
    err_text(load(&csv, &specs), &["data.csv", ".npy", ".npz", "folder"]);
}

// ---------- image folders ----------

fn image_dir() -> (TempDir, PathBuf) {
    let dir = TempDir::new().unwrap();
    let images = dir.path().join("images");
    fs::create_dir(&images).unwrap();
    (dir, images)
}

#[test]
fn image_is_resized_bilinearly_and_normalised() {
    let (_tmp, images) = image_dir();
    let mut img = RgbImage::new(2, 1);
    img.put_pixel(0, 0, Rgb([10, 200, 51]));
    img.put_pixel(1, 0, Rgb([30, 100, 255]));
    img.save(images.join("a.png")).unwrap();

    let options = ImageOptions {
        scale: 1.0 / 255.0,
        mean: vec![0.5],
        std: vec![0.5],
        channel_order: ChannelOrder::Rgb,
    };
    let ds = load_dataset(&images, &[spec("img", &[1, 1, 1, 3], DType::F32)], &options).unwrap();
    // image's Triangle filter shrinking 2 -> 1 px: the output centre sits at x = 0.5 in
    // source pixel coordinates, the kernel is widened by the ratio 2, so both source
    // pixels are at distance 0.5 / 2 = 0.25 and weigh 1 - 0.25 = 0.75 each, i.e. 1/2
    // after normalising: the average, (20, 150, 153), exact in u8.
    // (p / 255 - 0.5) / 0.5 = 2p / 255 - 1:
    //   20 -> 40/255 - 1 = -215/255, 150 -> 300/255 - 1 = 45/255, 153 -> 306/255 - 1 = 0.2
    let (shape, values) = f32s(&ds.sample(0).unwrap()[0]);
    assert_eq!(shape, vec![1, 1, 1, 3]);
    assert_close(&values, &[-215.0 / 255.0, 45.0 / 255.0, 0.2]);
}

#[test]
fn same_size_images_are_sorted_bgr_and_per_channel_normalised() {
    let (_tmp, images) = image_dir();
    let mut first = RgbImage::new(2, 2);
    for (i, px) in first.pixels_mut().enumerate() {
        let i = i as u8;
        *px = Rgb([i, 10 + i, 100 + i]);
    }
    let second = RgbImage::from_pixel(2, 2, Rgb([255, 0, 128]));
    // Sorted by name, whatever the directory order; upper-case extensions count.
    second.save(images.join("b.PNG")).unwrap();
    first.save(images.join("a.png")).unwrap();
    fs::write(images.join("notes.txt"), "not an image").unwrap();

    let options = ImageOptions {
        scale: 1.0,
        mean: vec![100.0, 10.0, 0.0],
        std: vec![1.0, 2.0, 4.0],
        channel_order: ChannelOrder::Bgr,
    };
    let ds = load_dataset(&images, &[spec("img", &[1, 2, 2, 3], DType::F32)], &options).unwrap();
    assert_eq!(ds.num_samples(), 2);
    // Pixel i of a.png is RGB (i, 10+i, 100+i) -> BGR (100+i, 10+i, i)
    // -> ((100+i) - 100) / 1, ((10+i) - 10) / 2, (i - 0) / 4 = (i, i/2, i/4).
    let (shape, a) = f32s(&ds.sample(0).unwrap()[0]);
    assert_eq!(shape, vec![1, 2, 2, 3]);
    assert_close(
        &a,
        &[
            0.0, 0.0, 0.0, //
            1.0, 0.5, 0.25, //
            2.0, 1.0, 0.5, //
            3.0, 1.5, 0.75,
        ],
    );
    // b.png: RGB (255, 0, 128) -> BGR (128, 0, 255) -> (28, -5, 63.75) everywhere.
    let (_, b) = f32s(&ds.sample(1).unwrap()[0]);
    assert_close(&b, &[28.0, -5.0, 63.75].repeat(4));
}

#[test]
fn integer_image_inputs_take_raw_or_shifted_pixels() {
    let (_tmp, images) = image_dir();
    RgbImage::from_pixel(1, 1, Rgb([0, 128, 255]))
        .save(images.join("x.png"))
        .unwrap();
    let opts = ImageOptions::default();
    let u8_ds = load_dataset(&images, &[spec("in", &[1, 1, 1, 3], DType::U8)], &opts).unwrap();
    assert_eq!(
        u8_ds.sample(0).unwrap(),
        vec![SampleArray::U8(arr(&[1, 1, 1, 3], vec![0, 128, 255]))]
    );
    let i8_ds = load_dataset(&images, &[spec("in", &[1, 1, 1, 3], DType::I8)], &opts).unwrap();
    // p - 128
    assert_eq!(
        i8_ds.sample(0).unwrap(),
        vec![SampleArray::I8(arr(&[1, 1, 1, 3], vec![-128, 0, 127]))]
    );
}

#[test]
fn grayscale_input_and_constant_image_resize() {
    let (_tmp, images) = image_dir();
    // Any weighted average of a constant image is that constant.
    GrayImage::from_pixel(7, 5, Luma([51]))
        .save(images.join("g.png"))
        .unwrap();
    let ds = load_dataset(
        &images,
        &[spec("gray", &[1, 3, 2, 1], DType::F32)],
        &ImageOptions::default(),
    )
    .unwrap();
    // 51 / 255 = 0.2
    let (shape, values) = f32s(&ds.sample(0).unwrap()[0]);
    assert_eq!(shape, vec![1, 3, 2, 1]);
    assert_close(&values, &[0.2; 6]);
}

#[test]
fn corrupt_image_names_the_file() {
    let (_tmp, images) = image_dir();
    RgbImage::new(1, 1).save(images.join("a.png")).unwrap();
    let good = fs::read(images.join("a.png")).unwrap();
    // A png signature and then garbage.
    fs::write(
        images.join("b.png"),
        [&good[..12], b"garbage garbage"].concat(),
    )
    .unwrap();
    err_text(
        load(&images, &[spec("img", &[1, 1, 1, 3], DType::F32)]),
        &["b.png", "'img'", "remove or replace"],
    );
}

#[test]
fn image_folder_errors() {
    let (_tmp, images) = image_dir();
    err_text(
        load(&images, &[spec("img", &[1, 2, 2, 3], DType::F32)]),
        &["images", "no .png"],
    );
    RgbImage::new(1, 1).save(images.join("a.png")).unwrap();
    err_text(
        load(
            &images,
            &[
                spec("a", &[1, 2, 2, 3], DType::F32),
                spec("b", &[1, 4], DType::F32),
            ],
        ),
        &["images", "'a'", "'b'", ".npz"],
    );
    err_text(
        load(&images, &[spec("nchw", &[1, 3, 2, 2], DType::F32)]),
        &["images", "'nchw'", "[1, H, W, C]", "[1, 3, 2, 2] float32"],
    );
    let two_means = ImageOptions {
        mean: vec![0.1, 0.2],
        ..ImageOptions::default()
    };
    err_text(
        load_dataset(
            &images,
            &[spec("img", &[1, 1, 1, 3], DType::F32)],
            &two_means,
        ),
        &["images", "'img'", "mean has 2 values"],
    );
}

// ---------- labels ----------

#[test]
fn labels_from_npy_of_any_integer_dtype() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("labels.npy");
    write_npy(&path, &array![3u8, 0, 255]).unwrap();
    assert_eq!(load_labels(&path, Some(3)).unwrap(), vec![3, 0, 255]);
    write_npy(&path, &array![[-1i32], [7]]).unwrap();
    assert_eq!(load_labels(&path, None).unwrap(), vec![-1, 7]);
    write_npy(&path, &array![[1i64, 2], [3, 4]]).unwrap();
    err_text(
        load_labels(&path, None),
        &["labels.npy", "[N]", "[2, 2] int64"],
    );
    write_npy(&path, &array![1.0f32, 2.0]).unwrap();
    err_text(
        load_labels(&path, None),
        &["labels.npy", "float32", "integer"],
    );
}

#[test]
fn labels_from_text_ignore_trailing_blank_lines() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("labels.txt");
    fs::write(&path, "\u{feff}4\n-2\r\n 17 \n\n\n").unwrap();
    assert_eq!(load_labels(&path, Some(3)).unwrap(), vec![4, -2, 17]);
}

#[test]
fn labels_count_mismatch_names_both_counts() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("labels.txt");
    fs::write(&path, "1\n2\n").unwrap();
    err_text(
        load_labels(&path, Some(5)),
        &["labels.txt", "2 labels", "5 samples"],
    );
}

#[test]
fn non_integer_label_line_names_its_line_number() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("labels.txt");
    fs::write(&path, "1\n2\ncat\n4\n").unwrap();
    err_text(load_labels(&path, None), &["labels.txt", "line 3", "'cat'"]);
    // A blank line in the middle would shift later labels.
    fs::write(&path, "1\n\n3\n").unwrap();
    err_text(load_labels(&path, None), &["labels.txt", "line 2 is blank"]);
}

// ---------- writing ----------

#[test]
fn written_npz_reads_back_with_ndarray_npy_and_as_a_dataset() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("out.npz");
    fs::write(&path, b"stale").unwrap();
    let x = arr(&[2, 2], vec![1.0f32, 2.0, 3.0, 4.0]);
    let ids = arr(&[2, 1], vec![5i64, 6]);
    write_npz_atomic(
        &path,
        &[
            ("x".into(), SampleArray::F32(x.clone())),
            ("ids".into(), SampleArray::I64(ids.clone())),
        ],
    )
    .unwrap();

    let mut npz = NpzReader::new(File::open(&path).unwrap()).unwrap();
    assert_eq!(npz.names().unwrap(), vec!["x", "ids"]);
    let back: ArrayD<f32> = npz.by_name("x").unwrap();
    assert_eq!(back, x);
    let back: ArrayD<i64> = npz.by_name("ids").unwrap();
    assert_eq!(back, ids);

    let ds = load(
        &path,
        &[
            spec("x", &[1, 2], DType::F32),
            spec("ids", &[1, 1], DType::I64),
        ],
    )
    .unwrap();
    assert_eq!(ds.num_samples(), 2);
    let names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["out.npz"], "no temp file may be left behind");
}

#[test]
fn failed_npz_write_keeps_the_existing_file() {
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("out.npz");
    fs::write(&path, b"keep me").unwrap();
    let a = SampleArray::F32(arr(&[1], vec![1.0]));
    err_text(
        write_npz_atomic(&path, &[("x".into(), a.clone()), ("x".into(), a.clone())]),
        &["out.npz", "'x'"],
    );
    assert_eq!(fs::read(&path).unwrap(), b"keep me");

    // Into a folder that does not exist.
    let missing = dir.path().join("no_such_dir").join("out.npz");
    err_text(write_npz_atomic(&missing, &[("x".into(), a)]), &["out.npz"]);
    assert!(!missing.exists());
}
