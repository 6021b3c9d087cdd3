//! The evaluation protocols' real file formats: `.npy` features, pickled `.bin` packs, LFW
//! `pairs.txt` and image lists, MegaFace devkit lists, feature files and noise lists, IJB-C meta
//! files — valid input parses to the values written, malformed input is an `InputError` naming
//! the file and the line or record.

mod common;
use common::npy_bytes;

use p2sbench::error::InputError;
use p2sbench::metrics::ijbc::meta;
use p2sbench::metrics::megaface::formats;
use p2sbench::metrics::{lfw, npy, pickle, Features};
use std::path::{Path, PathBuf};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn expect_err<T: std::fmt::Debug>(r: Result<T, InputError>, location: &str, words: &[&str]) -> InputError {
    let e = r.expect_err("malformed input must be rejected");
    assert!(e.location.ends_with(location), "location {:?} should end with {location:?}", e.location);
    for w in words {
        assert!(e.message.contains(w), "message {:?} should mention {w:?}", e.message);
    }
    e
}

#[test]
fn npy_round_trip_and_header_versions() {
    let dir = tempfile::tempdir().unwrap();
    let f = Features::new(3, 2, vec![1.0, -2.5, 3.25, 0.0, f32::MIN_POSITIVE, 7.0]);
    let path = dir.path().join("f.npy");
    npy::write(&path, &f).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    // Version 1.0, header padded so the data starts at a multiple of 64.
    assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert_eq!((10 + header_len) % 64, 0);
    assert_eq!(bytes.len(), 10 + header_len + 6 * 4);
    assert_eq!(npy::read(&path).unwrap(), f);

    // Version 2.0 (u32 header length) and 3.0, other spacing, as numpy may write them.
    let data = [1.0f32, 2.0, 3.0, 4.0];
    for major in [2u8, 3] {
        let p =
            write(dir.path(), "v.npy", &npy_bytes(major, "{'descr':'<f4','fortran_order':False,'shape':(2,2)}", &data));
        assert_eq!(npy::read(&p).unwrap(), Features::new(2, 2, data.to_vec()));
    }
}

#[test]
fn npy_rejects_what_is_not_little_endian_f32_c_order_2d() {
    let dir = tempfile::tempdir().unwrap();
    let d = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }";
    let cases: &[(&str, Vec<u8>, &[&str])] = &[
        ("big-endian", npy_bytes(1, &d.replace("<f4", ">f4"), &[0.0; 4]), &["big-endian", "'<f4'"]),
        ("f8", npy_bytes(1, &d.replace("<f4", "<f8"), &[0.0; 8]), &["dtype \"<f8\""]),
        ("fortran", npy_bytes(1, &d.replace("False", "True"), &[0.0; 4]), &["Fortran order"]),
        ("3d", npy_bytes(1, &d.replace("(2, 2)", "(1, 2, 2)"), &[0.0; 4]), &["3 dimensions"]),
        ("truncated", npy_bytes(1, d, &[0.0; 3]), &["truncated data", "needs 16 bytes", "holds 12"]),
        ("long", npy_bytes(1, d, &[0.0; 5]), &["4 bytes after"]),
        ("version", npy_bytes(4, d, &[0.0; 4]), &["version 4.0"]),
        ("magic", b"PK\x03\x04 not numpy".to_vec(), &["not a .npy file"]),
    ];
    for (name, bytes, words) in cases {
        let p = write(dir.path(), &format!("{name}.npy"), bytes);
        expect_err(npy::read(&p), &format!("{name}.npy"), words);
    }
    expect_err(npy::read(&dir.path().join("absent.npy")), "absent.npy", &["cannot open"]);
}

/// Python 3's `pickle.dumps(([b'abc', b'de'], [True]), protocol=4)`.
const PICKLE_P4: &[u8] =
    b"\x80\x04\x95\x16\x00\x00\x00\x00\x00\x00\x00]\x94(C\x03abc\x94C\x02de\x94e]\x94\x88a\x86\x94.";
/// Python 2's protocol 2 for the same value (`str` as SHORT_BINSTRING), as old insightface packs hold.
const PICKLE_P2: &[u8] = b"\x80\x02]q\x00(U\x03abcq\x01U\x02deq\x02e]q\x03\x88a\x86q\x04.";

#[test]
fn pickle_reads_python_2_and_3_packs_and_rejects_objects() {
    let expect = pickle::Value::Tuple(vec![
        pickle::Value::List(vec![
            pickle::Value::Bytes(std::rc::Rc::new(b"abc".to_vec())),
            pickle::Value::Bytes(std::rc::Rc::new(b"de".to_vec())),
        ]),
        pickle::Value::List(vec![pickle::Value::Bool(true)]),
    ]);
    assert_eq!(pickle::parse(PICKLE_P4).unwrap(), expect);
    assert_eq!(pickle::parse(PICKLE_P2).unwrap(), expect);
    // Truncation, a trailing byte, and a GLOBAL opcode (a Python object) are errors with offsets.
    let e = pickle::parse(&PICKLE_P4[..PICKLE_P4.len() - 3]).unwrap_err();
    assert!(e.message.contains("truncated") || e.message.contains("STOP"), "{e:?}");
    let mut long = PICKLE_P2.to_vec();
    long.push(b'x');
    assert!(pickle::parse(&long).unwrap_err().message.contains("1 bytes after"));
    let global = b"\x80\x02cnumpy\nbool_\nq\x00.";
    let e = pickle::parse(global).unwrap_err();
    assert_eq!(e.offset, 2);
    assert!(e.message.contains("0x63"), "{e:?}");
}

#[test]
fn bin_pack_pairs_and_shape_errors() {
    let dir = tempfile::tempdir().unwrap();
    let p = write(dir.path(), "lfw.bin", PICKLE_P4);
    // Two images but a single pair flag: images 0 and 1 form pair 0.
    let pack = lfw::read_bin(&p).unwrap();
    assert_eq!(pack.images, vec![b"abc".to_vec(), b"de".to_vec()]);
    assert_eq!(pack.issame, vec![true]);
    assert_eq!(pack.pairs(), vec![p2sbench::metrics::verification::Pair { a: 0, b: 1, same: true }]);
    // Three images for one pair.
    let three = b"\x80\x02]q\x00(U\x01aU\x01bU\x01ce]q\x01\x88a\x86q\x02.";
    let p = write(dir.path(), "three.bin", three);
    expect_err(lfw::read_bin(&p), "three.bin", &["3 images for 1 pairs"]);
    // A flag that is not a bool.
    let text_flag = b"\x80\x02]q\x00(U\x01aU\x01be]q\x01X\x03\x00\x00\x00yesa\x86q\x02.";
    let p = write(dir.path(), "flag.bin", text_flag);
    expect_err(lfw::read_bin(&p), "flag.bin: record 0", &["is a str, expected a bool"]);
    let p = write(dir.path(), "cut.bin", &PICKLE_P4[..20]);
    let e = lfw::read_bin(&p).unwrap_err();
    assert!(e.location.contains("cut.bin: byte"), "{e:?}");
}

#[test]
fn pairs_txt_view2_and_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let ok = "2\t1\nAnn_B\t1\t4\nAnn_B\t2\tCarl_D\t13\nCarl_D\t1\t2\nAnn_B\t3\tEve_F\t1\n";
    let pairs = lfw::read_pairs(&write(dir.path(), "pairs.txt", ok.as_bytes())).unwrap();
    assert_eq!((pairs.folds, pairs.per_fold), (2, 1));
    assert_eq!(pairs.pairs.len(), 4);
    assert_eq!(pairs.pairs[0].left, "Ann_B/Ann_B_0001.jpg");
    assert_eq!(pairs.pairs[0].right, "Ann_B/Ann_B_0004.jpg");
    assert_eq!(pairs.pairs[1].right, "Carl_D/Carl_D_0013.jpg");
    assert_eq!((pairs.pairs[1].same, pairs.pairs[1].line), (false, 3));
    let (images, indexed) = lfw::unique_images(&pairs);
    // Distinct images in order of first appearance; every image here appears once.
    assert_eq!(images.len(), 8);
    assert_eq!(images[6], "Ann_B/Ann_B_0003.jpg");
    assert_eq!((indexed[3].a, indexed[3].b, indexed[3].same), (6, 7, false));
    let cases: &[(&str, &str, &[&str])] = &[
        ("2 1\nAnn_B 1\n", ":2", &["expected 3 fields"]),
        ("2 1\nAnn_B 1 x\n", ":2", &["1-based image number", "\"x\""]),
        ("2 1\nAnn_B 0 2\n", ":2", &["1-based image number"]),
        ("2 1\nAnn_B 1 2 Carl_D 3 4\n", ":2", &["found 6"]),
        ("2 1\nAnn_B 1 Carl_D 2\n", ":2", &["expected a matched pair", "pair 1 of fold 1"]),
        ("2 1\nAnn_B 1 2\nAnn_B 1 2\n", ":3", &["expected a mismatched pair"]),
        ("2 1\nAnn_B 1 2\nAnn_B 1 Carl_D 2\n", "pairs.txt", &["2 pairs", "promises 4"]),
        ("300\nAnn_B 1 2\n", ":1", &["View 1"]),
        ("ten 300\n", ":1", &["a fold count"]),
    ];
    for (text, location, words) in cases {
        let p = write(dir.path(), "pairs.txt", text.as_bytes());
        expect_err(lfw::read_pairs(&p), location, words);
    }
}

#[test]
fn image_lists_map_pairs_to_rows() {
    let dir = tempfile::tempdir().unwrap();
    let pairs = write(dir.path(), "pairs.txt", b"2 1\nA 1 2\nA 1 B 1\nB 1 2\nA 2 B 2\n");
    let pairs_file = lfw::read_pairs(&pairs).unwrap();
    let list = write(dir.path(), "images.txt", b"B/B_0002.jpg\nA/A_0001.jpg\n\nA/A_0002.jpg\nB/B_0001.jpg\n");
    let names = lfw::read_list(&list).unwrap();
    let rows = lfw::pairs_from_list(&pairs, &pairs_file, &list, &names).unwrap();
    let got: Vec<(usize, usize, bool)> = rows.iter().map(|p| (p.a, p.b, p.same)).collect();
    assert_eq!(got, vec![(1, 2, true), (1, 3, false), (3, 0, true), (2, 0, false)]);
    let short = write(dir.path(), "short.txt", b"A/A_0001.jpg\nA/A_0002.jpg\nB/B_0001.jpg\n");
    let names = lfw::read_list(&short).unwrap();
    expect_err(
        lfw::pairs_from_list(&pairs, &pairs_file, &short, &names),
        "pairs.txt:4",
        &["B/B_0002.jpg", "short.txt"],
    );
    let dup = write(dir.path(), "dup.txt", b"A/A_0001.jpg\nB/B_0001.jpg\nA/A_0001.jpg\n");
    expect_err(lfw::read_list(&dup), "dup.txt:3", &["listed twice", "line 1"]);
}

#[test]
fn megaface_lists_feature_files_and_noise() {
    let dir = tempfile::tempdir().unwrap();
    let probes = write(dir.path(), "fs.json", br#"{"id": ["a", "a", "b"], "path": ["a/1.png", "a/2.png", "b/1.png"]}"#);
    let l = formats::read_list(&probes, true).unwrap();
    assert_eq!(l.ids.unwrap(), vec!["a", "a", "b"]);
    assert_eq!(l.paths[2], "b/1.png");
    let d = write(dir.path(), "mf.json", br#"{"path": ["1/x/1.jpg"]}"#);
    assert!(formats::read_list(&d, false).unwrap().ids.is_none());
    expect_err(formats::read_list(&d, true), "mf.json", &["no \"id\" list"]);
    let bad = write(dir.path(), "bad.json", b"{\"path\": [\n\"a\",\n]}");
    expect_err(formats::read_list(&bad, false), "bad.json:3", &["invalid JSON"]);
    let mismatch = write(dir.path(), "mm.json", br#"{"id": ["a"], "path": ["a/1.png", "a/2.png"]}"#);
    expect_err(formats::read_list(&mismatch, true), "mm.json", &["1 ids for 2 paths"]);
    let nonstr = write(dir.path(), "ns.json", br#"{"path": ["a", null]}"#);
    expect_err(formats::read_list(&nonstr, false), "ns.json: record 1", &["expected a string"]);

    // Feature files: the devkit/insightface header (rows = d, cols = 1, stride 4, CV_32FC1).
    let f = [0.5f32, -1.0, 2.0];
    let bytes = formats::encode_mat(&f);
    assert_eq!(&bytes[..16], &[3, 0, 0, 0, 1, 0, 0, 0, 4, 0, 0, 0, 5, 0, 0, 0]);
    let p = write(dir.path(), "x.bin", &bytes);
    assert_eq!(formats::read_mat(&p).unwrap(), f.to_vec());
    let mut wrong_type = bytes.clone();
    wrong_type[12] = 6;
    expect_err(formats::read_mat(&write(dir.path(), "t.bin", &wrong_type)), "t.bin", &["mat type 6"]);
    expect_err(
        formats::read_mat(&write(dir.path(), "c.bin", &bytes[..20])),
        "c.bin",
        &["truncated", "12 data bytes, found 4"],
    );
    let mut stride = bytes.clone();
    stride[8] = 8;
    expect_err(formats::read_mat(&write(dir.path(), "s.bin", &stride)), "s.bin", &["stride 8"]);
    expect_err(formats::read_mat(&write(dir.path(), "h.bin", &bytes[..10])), "h.bin", &["16-byte mat header"]);

    // Noise lists: comments skipped, the last tab-separated field names the image.
    let noise = write(dir.path(), "n.txt", b"# header\nAaron_1.png\n17\t123/45@N00/678_0.jpg\n");
    let set = formats::read_noise_list(&noise).unwrap();
    assert_eq!(set.len(), 2);
    assert!(formats::is_noise(&set, "Aaron/Aaron_1.png", 1));
    assert!(formats::is_noise(&set, "root/123/45@N00/678_0.jpg", 3));
    assert!(!formats::is_noise(&set, "123/45@N00/678_1.jpg", 3));
}

#[test]
fn ijbc_meta_files_and_malformed_lines() {
    let dir = tempfile::tempdir().unwrap();
    let tid = write(dir.path(), "tid.txt", b"1.jpg 1 100\n2.jpg 1 101\n3.jpg 7 102\n");
    let images = meta::read_image_list(&tid).unwrap();
    assert_eq!(images.templates, vec![1, 1, 7]);
    assert_eq!(images.medias, vec![100, 101, 102]);
    let bad = write(dir.path(), "bad_tid.txt", b"1.jpg 1 100\n2.jpg 1\n");
    expect_err(meta::read_image_list(&bad), "bad_tid.txt:2", &["expected 3 fields"]);
    let bad = write(dir.path(), "neg.txt", b"1.jpg -1 100\n");
    expect_err(meta::read_image_list(&bad), "neg.txt:1", &["template id", "\"-1\""]);

    let pairs = meta::read_pairs(&write(dir.path(), "p.txt", b"1 7 0\n7 1 1\n")).unwrap();
    assert_eq!((pairs.t1, pairs.t2, pairs.genuine), (vec![1, 7], vec![7, 1], vec![false, true]));
    let bad = write(dir.path(), "bad_p.txt", b"1 7 0\n\n1 7 2\n");
    expect_err(meta::read_pairs(&bad), "bad_p.txt:3", &["label \"2\""]);

    let pts = b"1.jpg 1 2 3 4 5 6 7 8 9 10 0.9\n2.jpg 1 2 3 4 5 6 7 8 9 10 0.5\n3.jpg 0 0 0 0 0 0 0 0 0 0 0.25\n";
    let (lm, scores) = meta::read_landmarks(&write(dir.path(), "s.txt", pts), &images, &tid).unwrap();
    assert_eq!(scores, vec![0.9, 0.5, 0.25]);
    assert_eq!(lm[0][4], [9.0, 10.0]);
    let swapped = b"2.jpg 1 2 3 4 5 6 7 8 9 10 0.9\n1.jpg 1 2 3 4 5 6 7 8 9 10 0.5\n";
    expect_err(
        meta::read_scores(&write(dir.path(), "sw.txt", swapped), &images, &tid),
        "sw.txt:1",
        &["row 1", "1.jpg"],
    );
    expect_err(meta::read_scores(&write(dir.path(), "few.txt", &pts[..62]), &images, &tid), "few.txt", &["2 images"]);

    let csv = b"TEMPLATE_ID,SUBJECT_ID,FILENAME\n7,3,img/a.jpg\n1,2,img/b.jpg\n7,3,img/c.jpg\n";
    let g = meta::read_1n(&write(dir.path(), "g.csv", csv)).unwrap();
    assert_eq!((g.templates, g.subjects), (vec![1, 7], vec![2, 3]));
    let bad = write(dir.path(), "g_bad.csv", b"TEMPLATE_ID,SUBJECT_ID\n7,x\n");
    expect_err(meta::read_1n(&bad), "g_bad.csv:2", &["subject id"]);
}

#[test]
fn five_point_alignment_recovers_a_similarity_and_warps_exactly() {
    use p2sbench::metrics::align::{align, Similarity, ARCFACE_TEMPLATE};
    // Scale 1.5, rotation 30°, translation (4, -2).
    let truth = Similarity { a: 1.5 * 30f64.to_radians().cos(), b: 1.5 * 30f64.to_radians().sin(), tx: 4.0, ty: -2.0 };
    let src: Vec<[f32; 2]> = ARCFACE_TEMPLATE.to_vec();
    let dst: Vec<[f32; 2]> = src
        .iter()
        .map(|p| {
            let (x, y) = truth.apply(p[0] as f64, p[1] as f64);
            [x as f32, y as f32]
        })
        .collect();
    let est = Similarity::estimate(&src, &dst);
    for (got, want) in [(est.a, truth.a), (est.b, truth.b), (est.tx, truth.tx), (est.ty, truth.ty)] {
        assert!((got - want).abs() < 1e-4, "{est:?} vs {truth:?}");
    }
    let (x, y) = est.inverse().apply(est.apply(10.0, 20.0).0, est.apply(10.0, 20.0).1);
    assert!((x - 10.0).abs() < 1e-9 && (y - 20.0).abs() < 1e-9);
    // Landmarks already on the template (scaled to 24 px): the warp is the identity.
    let rgb: Vec<u8> = (0..24 * 24 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let mut lm = [[0f32; 2]; 5];
    for (l, t) in lm.iter_mut().zip(ARCFACE_TEMPLATE) {
        *l = [t[0] * 24.0 / 112.0, t[1] * 24.0 / 112.0];
    }
    let out = align(&rgb, 24, 24, &lm, 24, 3);
    for c in 0..3 {
        for p in 0..24 * 24 {
            assert_eq!(out[c * 576 + p], rgb[p * 3 + c], "channel {c} pixel {p}");
        }
    }
}
