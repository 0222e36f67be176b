//! `cargo xtask bench-images`: decoded frames, rendered images and series thumbnails, side by side with Orthanc.
//!
//! What a viewer costs a server: a compressed frame decoded for a client that asked for Explicit VR Little Endian,
//! a rendered JPEG of a CT slice, and a study browser's series thumbnails, the first time (cold: the server reads,
//! decodes and draws) and again (warm: dicomweb serves what it drew from its rendered cache; Orthanc draws
//! again). The data are CT slices of 512 x 512 12-bit pixels with a rescale and a window, generated here (a
//! phantom with noise, so that they compress as real slices do), stored as Explicit VR Little Endian and, through
//! DCMTK's `dcmcjpeg` (Debian package dcmtk), as JPEG lossless SV1, the usual compressed form of CT in archives.
//!
//! Orthanc's DICOMweb plugin has no `/thumbnail`; its series `/rendered` with a 128 x 128 viewport draws the same
//! thing (a series's representative image fitted in 128 x 128), so that is what Orthanc is asked for a series
//! thumbnail. Every response is checked: decoded frames byte for byte against the generated pixels, images by
//! their JPEG header and size.

use super::*;
use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::tags;
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

const SECTION: &str = "Rendered images, thumbnails and decoded frames, side by side with Orthanc";
const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";
const JPEG_LOSSLESS_SV1: &str = "1.2.840.10008.1.2.4.70";
const SIZE: u16 = 512;
const THUMBNAIL: u32 = 128;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Series to ask a thumbnail of, each once cold (default 20).
    #[arg(long, default_value_t = 20)]
    series: usize,
    /// Instances per series (default 10).
    #[arg(long, default_value_t = 10)]
    instances_per_series: usize,
    /// Timed requests of each warm measure, after as many untimed (default 40).
    #[arg(long, default_value_t = 40)]
    repeats: usize,
    /// Do not write the results to docs/benchmarks.md.
    #[arg(long)]
    no_report: bool,
    /// Keep both servers' temporary directories and logs.
    #[arg(long)]
    keep: bool,
}

/// The pause between the stores and the first timed request.
const SETTLE: std::time::Duration = std::time::Duration::from_secs(5);

pub fn run(args: &Args) -> Result<()> {
    ensure!(
        args.series >= 2 && args.instances_per_series >= 1 && args.repeats >= 1,
        "--series must be at least 2, --instances-per-series and --repeats at least 1"
    );
    let root = server::workspace_root();
    let target_dir = server::target_dir(&root)?;
    let orthanc_binary =
        prerequisites::ensure_debian_program("Orthanc", &["orthanc", "orthanc-dicomweb"])?;
    let plugin = dicomweb_plugin()?;
    let dcmcjpeg = prerequisites::ensure_debian_program("dcmcjpeg", &["dcmtk"])?;
    eprintln!(
        "xtask: cargo build --release --bin dicomweb (target directory {})",
        target_dir.display()
    );
    let binary = server::build_release(&root, &target_dir)?;
    let work = tempfile::Builder::new()
        .prefix("dicomweb-bench-images-")
        .tempdir()
        .context("creating a temporary directory for both servers")?;
    let agent = ureq::Agent::new_with_config(
        ureq::config::Config::builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build(),
    );

    eprintln!("xtask: generating the CT series and their JPEG lossless copies (dcmcjpeg)");
    let data = DataSet::generate(args, &dcmcjpeg, work.path())?;

    let outcome = with_both_servers(
        &binary,
        &orthanc_binary,
        &plugin,
        work.path(),
        &agent,
        |targets| measure(args, &data, targets, &agent),
    );
    if args.keep {
        let kept = work.keep();
        eprintln!(
            "xtask: kept both servers' data and logs in {}",
            kept.display()
        );
    }
    let (figures, checked) = outcome?;
    let outcome = Outcome {
        figures,
        write_path: String::new(),
        checked_responses: checked,
        qido_studies: 0,
    };
    let table = table(&outcome);
    println!("\n{table}");
    if !args.no_report {
        let path = root.join("docs").join("benchmarks.md");
        let body = report_markdown(
            args,
            &data,
            &outcome,
            &table,
            &orthanc_version(&orthanc_binary),
        );
        report::update_section(&path, SECTION, &body)?;
        eprintln!("xtask: wrote \"{SECTION}\" in {}", path.display());
    }
    Ok(())
}

/// One generated CT slice: its UIDs, its pixels and its file.
struct Slice {
    uids: Uids,
    pixels: Vec<u8>,
    file: Vec<u8>,
}

struct DataSet {
    /// Explicit VR Little Endian, by series, then instance.
    series: Vec<Vec<Slice>>,
    /// One more series of as many slices, JPEG lossless SV1 (dcmcjpeg's output).
    jpeg_lossless: Vec<Slice>,
    native_bytes: usize,
    jpeg_lossless_bytes: usize,
}

impl DataSet {
    fn generate(args: &Args, dcmcjpeg: &Path, dir: &Path) -> Result<DataSet> {
        let study = Uids::unique().study;
        let slice = |series: usize, instance: usize| -> Result<Slice> {
            let series_uid = format!("{study}.{}", series + 1);
            let uids = Uids {
                study: study.clone(),
                sop: format!("{series_uid}.{}", instance + 1),
                series: series_uid,
            };
            let pixels = phantom((series * args.instances_per_series + instance) as u64);
            let file = ct_file(&uids, &pixels, instance as u32 + 1)?;
            Ok(Slice { uids, pixels, file })
        };
        let mut series = Vec::new();
        for s in 0..args.series {
            series.push(
                (0..args.instances_per_series)
                    .map(|i| slice(s, i))
                    .collect::<Result<Vec<_>>>()?,
            );
        }
        let mut jpeg_lossless = Vec::new();
        for i in 0..args.instances_per_series {
            let mut slice = slice(args.series, i)?;
            let input = dir.join("slice.dcm");
            let output = dir.join("slice-jpeg.dcm");
            std::fs::write(&input, &slice.file)?;
            let status = Command::new(dcmcjpeg)
                .arg(&input)
                .arg(&output)
                .stdout(Stdio::null())
                .status()
                .with_context(|| format!("running {}", dcmcjpeg.display()))?;
            ensure!(status.success(), "dcmcjpeg failed ({status})");
            slice.file = std::fs::read(&output)?;
            let syntax = dicom_object::OpenFileOptions::new()
                .read_until(tags::PIXEL_DATA)
                .open_file(&output)
                .context("reading dcmcjpeg's output")?
                .meta()
                .transfer_syntax()
                .trim_end_matches('\0')
                .to_owned();
            ensure!(
                syntax == JPEG_LOSSLESS_SV1,
                "dcmcjpeg wrote {syntax}, not JPEG lossless SV1"
            );
            jpeg_lossless.push(slice);
        }
        Ok(DataSet {
            native_bytes: series.iter().flatten().map(|s| s.file.len()).sum(),
            jpeg_lossless_bytes: jpeg_lossless.iter().map(|s| s.file.len()).sum(),
            series,
            jpeg_lossless,
        })
    }

    fn slices(&self) -> usize {
        self.series.iter().map(Vec::len).sum::<usize>() + self.jpeg_lossless.len()
    }
}

/// A CT-like slice, as stored values (HU + 1024, 12 bits): air around an elliptic body of soft tissue with
/// organs, a spine and noise; `n` moves the anatomy a little, so that every slice differs.
fn phantom(n: u64) -> Vec<u8> {
    let size = f64::from(SIZE);
    let mut state = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut noise = move || {
        // xorshift64*: cheap, deterministic noise of about +-20 HU.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let r = state.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 40;
        (r as f64 / f64::from(1u32 << 24) - 0.5) * 40.0
    };
    let shift = (n % 16) as f64;
    let mut out = Vec::with_capacity(usize::from(SIZE) * usize::from(SIZE) * 2);
    for y in 0..SIZE {
        for x in 0..SIZE {
            let (fx, fy) = (f64::from(x) / size - 0.5, f64::from(y) / size - 0.5);
            let inside = |cx: f64, cy: f64, rx: f64, ry: f64| {
                ((fx - cx) / rx).powi(2) + ((fy - cy) / ry).powi(2) <= 1.0
            };
            let hu = if !inside(0.0, 0.0, 0.42, 0.33) {
                -1000.0
            } else if inside(0.0, 0.2, 0.05, 0.05) {
                700.0 + noise() * 3.0
            } else if inside(-0.18, -0.05 + shift / 400.0, 0.1, 0.13) {
                -850.0 + noise() * 2.0
            } else if inside(0.17, -0.04, 0.09, 0.12 - shift / 500.0) {
                60.0 + noise()
            } else {
                40.0 + noise()
            };
            let stored = (hu + 1024.0).clamp(0.0, 4095.0) as u16;
            out.extend_from_slice(&stored.to_le_bytes());
        }
    }
    out
}

/// A CT Image Storage file of `pixels` in Explicit VR Little Endian.
fn ct_file(uids: &Uids, pixels: &[u8], instance_number: u32) -> Result<Vec<u8>> {
    let mut ds = InMemDicomObject::new_empty();
    let text = |ds: &mut InMemDicomObject, tag, vr, value: &str| {
        ds.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    };
    let short = |ds: &mut InMemDicomObject, tag, value: u16| {
        ds.put(DataElement::new(tag, VR::US, PrimitiveValue::from(value)));
    };
    text(&mut ds, tags::SOP_CLASS_UID, VR::UI, CT_IMAGE_STORAGE);
    text(&mut ds, tags::SOP_INSTANCE_UID, VR::UI, &uids.sop);
    text(&mut ds, tags::STUDY_INSTANCE_UID, VR::UI, &uids.study);
    text(&mut ds, tags::SERIES_INSTANCE_UID, VR::UI, &uids.series);
    text(&mut ds, tags::PATIENT_NAME, VR::PN, "Bench^Images");
    text(&mut ds, tags::PATIENT_ID, VR::LO, "BENCH-IMAGES");
    text(&mut ds, tags::STUDY_DATE, VR::DA, "20261201");
    text(&mut ds, tags::MODALITY, VR::CS, "CT");
    text(
        &mut ds,
        tags::INSTANCE_NUMBER,
        VR::IS,
        &instance_number.to_string(),
    );
    text(
        &mut ds,
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2",
    );
    short(&mut ds, tags::SAMPLES_PER_PIXEL, 1);
    short(&mut ds, tags::ROWS, SIZE);
    short(&mut ds, tags::COLUMNS, SIZE);
    short(&mut ds, tags::BITS_ALLOCATED, 16);
    short(&mut ds, tags::BITS_STORED, 12);
    short(&mut ds, tags::HIGH_BIT, 11);
    short(&mut ds, tags::PIXEL_REPRESENTATION, 0);
    text(&mut ds, tags::RESCALE_INTERCEPT, VR::DS, "-1024");
    text(&mut ds, tags::RESCALE_SLOPE, VR::DS, "1");
    text(&mut ds, tags::WINDOW_CENTER, VR::DS, "40");
    text(&mut ds, tags::WINDOW_WIDTH, VR::DS, "400");
    ds.put(DataElement::new(
        tags::PIXEL_DATA,
        VR::OW,
        PrimitiveValue::from(pixels.to_vec()),
    ));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(CT_IMAGE_STORAGE)
        .media_storage_sop_instance_uid(uids.sop.as_str())
        .transfer_syntax(EXPLICIT_VR_LITTLE_ENDIAN);
    let file = ds.with_meta(meta).context("building the file meta")?;
    let mut out = Vec::new();
    file.write_all(&mut out).context("writing a CT slice")?;
    Ok(out)
}

fn store_all(agent: &ureq::Agent, target: &Target, files: &[(&Uids, &[u8])]) -> Result<usize> {
    for chunk in files.chunks(10) {
        let bodies: Vec<&[u8]> = chunk.iter().map(|(_, bytes)| *bytes).collect();
        let (body, content_type) = related_body(&bodies);
        let expected: Vec<String> = chunk.iter().map(|(uids, _)| uids.sop.clone()).collect();
        post_and_check(agent, &target.base, &body, &content_type, &expected)?;
    }
    Ok(files.len().div_ceil(10))
}

fn instance_url(target: &Target, uids: &Uids) -> String {
    format!(
        "{}/studies/{}/series/{}/instances/{}",
        target.base, uids.study, uids.series, uids.sop
    )
}

/// GETs `url`, which must answer 200 (up to 64 MiB); the time in ms until the body was read, its Content-Type
/// and the body.
fn timed_get(agent: &ureq::Agent, url: &str, accept: &str) -> Result<(f64, String, Vec<u8>)> {
    let started = Instant::now();
    let (status, content_type, body) = get_body(agent, url, accept, 64 * MIB)?;
    let elapsed = ms(started.elapsed());
    ensure!(
        status == 200,
        "GET {url} answered {status}: {}",
        clip(&String::from_utf8_lossy(&body))
    );
    Ok((elapsed, content_type, body))
}

/// GETs `url` and checks that the answer is a JPEG of `width` x `height` (sizes at most, when `fits`); the time.
fn get_jpeg(
    agent: &ureq::Agent,
    url: &str,
    accept: &str,
    size: (u32, u32),
    fits: bool,
) -> Result<f64> {
    let (elapsed, content_type, body) = timed_get(agent, url, accept)?;
    ensure!(
        content_type.starts_with("image/jpeg"),
        "GET {url}: Content-Type {content_type}, not image/jpeg"
    );
    let (width, height) = jpeg_size(&body).with_context(|| format!("GET {url}: not a JPEG"))?;
    let good = if fits {
        width.max(height) == size.0.max(size.1) && width <= size.0 && height <= size.1
    } else {
        (width, height) == size
    };
    ensure!(
        good,
        "GET {url}: a {width} x {height} JPEG, not {} x {}",
        size.0,
        size.1
    );
    Ok(elapsed)
}

/// (width, height) from a JPEG's start-of-frame segment.
fn jpeg_size(data: &[u8]) -> Result<(u32, u32)> {
    ensure!(data.starts_with(&[0xFF, 0xD8]), "no start of image");
    let mut i = 2;
    while i + 9 <= data.len() {
        ensure!(data[i] == 0xFF, "a segment without its marker");
        let marker = data[i + 1];
        let length = usize::from(u16::from_be_bytes([data[i + 2], data[i + 3]]));
        if matches!(marker, 0xC0..=0xC3) {
            let height = u32::from(u16::from_be_bytes([data[i + 5], data[i + 6]]));
            let width = u32::from(u16::from_be_bytes([data[i + 7], data[i + 8]]));
            return Ok((width, height));
        }
        i += 2 + length;
    }
    bail!("no start of frame")
}

/// GETs frame 1 of `slice` decoded to Explicit VR Little Endian and checks it byte for byte; the time.
fn decoded_frame(agent: &ureq::Agent, target: &Target, slice: &Slice) -> Result<f64> {
    let url = format!("{}/frames/1", instance_url(target, &slice.uids));
    let accept = format!(
        "multipart/related; type=\"application/octet-stream\"; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"
    );
    let (elapsed, content_type, body) = timed_get(agent, &url, &accept)?;
    let boundary = boundary_of(&content_type)
        .with_context(|| format!("GET {url}: no boundary in {content_type}"))?;
    let frame = only_part(&body, &boundary)?;
    ensure!(
        frame == slice.pixels.as_slice(),
        "GET {url}: the decoded frame ({} bytes) is not the generated one ({} bytes)",
        frame.len(),
        slice.pixels.len()
    );
    Ok(elapsed)
}

fn series_thumbnail_url(target: &Target, slices: &[Slice]) -> String {
    let uids = &slices[0].uids;
    if target.name == "dicomweb" {
        format!(
            "{}/studies/{}/series/{}/thumbnail",
            target.base, uids.study, uids.series
        )
    } else {
        // Orthanc's DICOMweb plugin has no /thumbnail: its series rendered, fitted in the thumbnail's size.
        format!(
            "{}/studies/{}/series/{}/rendered?viewport={THUMBNAIL},{THUMBNAIL}",
            target.base, uids.study, uids.series
        )
    }
}

fn measure(
    args: &Args,
    data: &DataSet,
    targets: &[Target; 2],
    agent: &ureq::Agent,
) -> Result<(Vec<Figure>, usize)> {
    let mut checked = 0usize;
    let mut figures = Vec::new();
    let mut phase = 0usize;
    let mut both =
        |name: &str, f: &mut dyn FnMut(&Target) -> Result<Vec<f64>>| -> Result<[Vec<f64>; 2]> {
            let order: [usize; 2] = if phase.is_multiple_of(2) {
                [0, 1]
            } else {
                [1, 0]
            };
            phase += 1;
            let mut values = [Vec::new(), Vec::new()];
            for index in order {
                let target = &targets[index];
                eprintln!("xtask: {name}: {}", target.name);
                let times = f(target).with_context(|| format!("{name} on {}", target.name))?;
                checked += times.len();
                values[index] = times;
            }
            Ok(values)
        };
    let median = |times: &[Vec<f64>; 2]| [percentile(&times[0], 0.5), percentile(&times[1], 0.5)];

    let files: Vec<(&Uids, &[u8])> = data
        .series
        .iter()
        .flatten()
        .chain(&data.jpeg_lossless)
        .map(|s| (&s.uids, s.file.as_slice()))
        .collect();
    both("store", &mut |t| {
        Ok(vec![0.0; store_all(agent, t, &files)?])
    })?;

    // Both servers finish what a store leaves behind (dicomweb commits its search index and writes small stores'
    // files in the background) before the first requests: cold is a slice never asked for, as a viewer opening
    // a study that arrived a while ago finds it, not one asked while its store is still being settled.
    std::thread::sleep(SETTLE);
    // A JPEG lossless frame decoded to Explicit VR Little Endian: each slice once, then again.
    let repeats = args.repeats;
    // Each server's times, the first request of each slice first (cold), then the repeated ones (warm).
    let times = both("JPEG lossless frame decoded", &mut |t| {
        let (mut cold, mut warm) = (Vec::new(), Vec::new());
        for round in 0..1 + repeats.div_ceil(data.jpeg_lossless.len()) {
            for slice in &data.jpeg_lossless {
                let elapsed = decoded_frame(agent, t, slice)?;
                if round > 0 {
                    warm.push(elapsed);
                } else {
                    cold.push(elapsed);
                }
            }
        }
        let mut times = cold;
        times.extend(warm);
        Ok(times)
    })?;
    let first = data.jpeg_lossless.len();
    let split = |cold: bool| -> [Vec<f64>; 2] {
        [0, 1].map(|i| {
            let (head, tail) = times[i].split_at(first.min(times[i].len()));
            if cold { head.to_vec() } else { tail.to_vec() }
        })
    };
    figures.push(Figure::latency(
        "JPEG lossless frame (512 x 512, 12-bit CT) decoded to Explicit VR Little Endian, first request (median)",
        "ms",
        median(&split(true)),
    ));
    figures.push(Figure::latency(
        "JPEG lossless frame decoded, asked again (median)",
        "ms",
        median(&split(false)),
    ));

    // Rendered JPEG of a 512 x 512 CT slice: the first request of each slice (cold), then repeated (warm).
    let first_series = &data.series[0];
    let rendered = |t: &Target, slice: &Slice| {
        get_jpeg(
            agent,
            &format!("{}/rendered", instance_url(t, &slice.uids)),
            "image/jpeg",
            (u32::from(SIZE), u32::from(SIZE)),
            false,
        )
    };
    let cold = both("rendered, first request", &mut |t| {
        first_series.iter().map(|s| rendered(t, s)).collect()
    })?;
    figures.push(Figure::latency(
        "Rendered JPEG of a 512 x 512 CT slice, first request (median)",
        "ms",
        median(&cold),
    ));
    let warm = both("rendered, again", &mut |t| {
        (0..repeats)
            .map(|n| rendered(t, &first_series[n % first_series.len()]))
            .collect()
    })?;
    figures.push(Figure::latency(
        "Rendered JPEG of a 512 x 512 CT slice, asked again (median)",
        "ms",
        median(&warm),
    ));

    // Series thumbnails as a study browser asks them: every series once (cold), then again (warm).
    let thumbnail = |t: &Target, slices: &[Slice]| {
        get_jpeg(
            agent,
            &series_thumbnail_url(t, slices),
            "image/jpeg",
            (THUMBNAIL, THUMBNAIL),
            true,
        )
    };
    let thumbnail_series = &data.series[1..];
    let cold = both("series thumbnails, first request", &mut |t| {
        thumbnail_series.iter().map(|s| thumbnail(t, s)).collect()
    })?;
    figures.push(Figure::latency(
        &format!(
            "Series thumbnail ({} instances of 512 x 512), first request (median of {} series)",
            args.instances_per_series,
            thumbnail_series.len()
        ),
        "ms",
        median(&cold),
    ));
    let warm = both("series thumbnails, again", &mut |t| {
        (0..repeats)
            .map(|n| thumbnail(t, &thumbnail_series[n % thumbnail_series.len()]))
            .collect()
    })?;
    figures.push(Figure::latency(
        "Series thumbnail, asked again (median)",
        "ms",
        median(&warm),
    ));
    Ok((figures, checked))
}

fn report_markdown(
    args: &Args,
    data: &DataSet,
    outcome: &Outcome,
    table: &str,
    peer: &str,
) -> String {
    let machine = Machine::describe();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "What a viewer costs a server, against {peer}, both started by the command on 127.0.0.1 as in the \
         section above (dicomweb: release build, `--workers 2`, its rendered cache at its default 64 MiB).\n"
    );
    let _ = writeln!(
        out,
        "Method: `cargo xtask bench-images` generates {} CT slices of 512 x 512 12-bit pixels ({} series of {} as Explicit VR \
         Little Endian, {:.1} MiB; a phantom with noise, rescale intercept -1024, window 40/400), plus one more series of as many as \
         JPEG lossless SV1 through DCMTK's `dcmcjpeg` ({:.1} MiB), stores them in both servers, waits {} s (dicomweb commits its index and writes small stores' files in the \
         background), then times, with one client (Rust, ureq, \
         HTTP/1.1 keep-alive), alternating which server goes first: frame 1 of the JPEG lossless slices as \
         `multipart/related; type=\"application/octet-stream\"; transfer-syntax=1.2.840.10008.1.2.1` (each \
         slice the first time it is asked, then {} requests again); `/rendered` of each slice of the first series as \
         `image/jpeg` the first time it is asked, then {} times again; the thumbnail of each of the other {} \
         series the first time, then {} times again (dicomweb: `/series/{{s}}/thumbnail`; Orthanc's plugin has no \
         thumbnail resource, so its series `/rendered?viewport=128,128`, which draws the same). Cold means the \
         server reads, decodes and draws; dicomweb serves a repeated frame from its transcoded-frame cache and a \
         repeated rendering from its rendered cache (each keyed by the stored file, looked up after the \
         catalogue), Orthanc decodes and draws it again. Every response is checked: \
         decoded frames byte for byte against the generated pixels, images by their JPEG header and size; {} \
         responses were checked.\n",
        data.slices(),
        args.series,
        args.instances_per_series,
        data.native_bytes as f64 / MIB as f64,
        data.jpeg_lossless_bytes as f64 / MIB as f64,
        SETTLE.as_secs(),
        args.repeats.div_ceil(data.jpeg_lossless.len()) * data.jpeg_lossless.len(),
        args.repeats,
        args.series - 1,
        args.repeats,
        outcome.checked_responses,
    );
    out.push_str(table);
    const TARGET: f64 = 3.0;
    let (met, missed): (Vec<&Figure>, Vec<&Figure>) = outcome
        .figures
        .iter()
        .partition(|f| f.values[1] / f.values[0] >= TARGET);
    let missed_names: Vec<String> = missed
        .iter()
        .map(|f| format!("{} ({:.1}x)", f.name, f.values[1] / f.values[0]))
        .collect();
    let _ = writeln!(
        out,
        "\nResult: at least {TARGET:.0}x faster than Orthanc (the target) on {} of {} figures{}.\n",
        met.len(),
        outcome.figures.len(),
        if missed_names.is_empty() {
            String::new()
        } else {
            format!("; **not met**: {}", missed_names.join("; "))
        }
    );
    let _ = writeln!(
        out,
        "| | |\n| --- | --- |\n| Machine | {machine} |\n| Date | {} |\n| Command | cargo xtask bench-images |",
        machine::now_utc()
    );
    out
}
