//! MediaPipe's BlazeFace front model (128x128 input), run by tract, and its
//! output decoded: 896 anchors on two grids, each with a score and a box and
//! six points relative to the anchor, merged by MediaPipe's weighted
//! non-maximum suppression.

use std::sync::{Arc, OnceLock};

use tract_onnx::prelude::*;

use super::{Detection, FaceError};

pub const INPUT: usize = 128;

type Plan = Arc<TypedSimplePlan>;

/// The optimised plan, built once per process (about 30 ms) and shared by
/// every worker: running it takes `&self`.
fn plan() -> Result<&'static Plan, FaceError> {
    static PLAN: OnceLock<Result<Plan, String>> = OnceLock::new();
    PLAN.get_or_init(|| build(super::DETECTOR_MODEL).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| FaceError::Model(e.clone()))
}

fn build(bytes: &[u8]) -> TractResult<Plan> {
    use tract_onnx::pb::{AttributeProto, TensorProto, attribute_proto, tensor_proto};
    let onnx = tract_onnx::onnx();
    let mut proto = onnx.proto_model_for_read(&mut std::io::Cursor::new(bytes))?;
    // The model's 11 ConstantOfShape nodes (zero channels padded onto a
    // tensor) carry no `value`. ONNX's default is a float32 zero, but tract
    // 0.23 defaults to a float64 one, which then fails to concatenate with
    // the float32 tensor: give them the default explicitly.
    for node in proto.graph.iter_mut().flat_map(|g| g.node.iter_mut()) {
        if node.op_type == "ConstantOfShape" && !node.attribute.iter().any(|a| a.name == "value") {
            node.attribute.push(AttributeProto {
                name: "value".to_owned(),
                r#type: attribute_proto::AttributeType::Tensor as i32,
                t: Some(TensorProto {
                    dims: vec![1],
                    data_type: tensor_proto::DataType::Float as i32,
                    float_data: vec![0.0],
                    ..TensorProto::default()
                }),
                ..AttributeProto::default()
            });
        }
    }
    onnx.model_for_proto_model(&proto)?
        .with_input_fact(0, f32::fact([1, INPUT, INPUT, 3]).into())?
        .into_optimized()?
        .into_runnable()
}

/// The anchors' centres in the input's unit square, in the model's output
/// order: a 16x16 grid with 2 anchors a cell, then an 8x8 grid with 6.
fn anchors() -> &'static [[f32; 2]] {
    static ANCHORS: OnceLock<Vec<[f32; 2]>> = OnceLock::new();
    ANCHORS.get_or_init(|| {
        let mut a = Vec::with_capacity(896);
        for (grid, per_cell) in [(16usize, 2usize), (8, 6)] {
            for y in 0..grid {
                for x in 0..grid {
                    let c = [
                        (x as f32 + 0.5) / grid as f32,
                        (y as f32 + 0.5) / grid as f32,
                    ];
                    a.extend(std::iter::repeat_n(c, per_cell));
                }
            }
        }
        a
    })
}

/// Runs the model on a 128x128 RGB input, values in [-1, 1], row-major
/// `[y][x][c]`. Detections with a score of at least `min_score`, in the
/// input's unit square, best first.
pub fn detect(input: Vec<f32>, min_score: f32) -> Result<Vec<Detection>, FaceError> {
    let plan = plan()?;
    let tensor = Tensor::from_shape(&[1, INPUT, INPUT, 3], &input)
        .map_err(|e| FaceError::Model(e.to_string()))?;
    let out = plan
        .run(tvec!(tensor.into()))
        .map_err(|e| FaceError::Model(format!("{e:#}")))?;
    let slice = |i: usize| -> Result<Vec<f32>, FaceError> {
        let t = out
            .get(i)
            .ok_or_else(|| FaceError::Model(format!("output {i} missing")))?;
        let view = t
            .to_plain_array_view::<f32>()
            .map_err(|e| FaceError::Model(e.to_string()))?;
        Ok(view.iter().copied().collect())
    };
    let scores: Vec<f32> = [slice(0)?, slice(1)?].concat();
    let raw: Vec<f32> = [slice(2)?, slice(3)?].concat();
    let anchors = anchors();
    if scores.len() != anchors.len() || raw.len() != 16 * anchors.len() {
        return Err(FaceError::Model(format!(
            "unexpected output sizes {} and {}",
            scores.len(),
            raw.len()
        )));
    }
    let mut found: Vec<Detection> = Vec::new();
    for (i, (&logit, a)) in scores.iter().zip(anchors).enumerate() {
        // MediaPipe clips the logits to ±100 before the sigmoid.
        let score = 1.0 / (1.0 + (-logit.clamp(-100.0, 100.0)).exp());
        if score < min_score {
            continue;
        }
        let r = &raw[16 * i..16 * i + 16];
        let s = INPUT as f32;
        let (cx, cy) = (a[0] + r[0] / s, a[1] + r[1] / s);
        let (w, h) = (r[2] / s, r[3] / s);
        let mut points = [[0f32; 2]; 6];
        for (k, p) in points.iter_mut().enumerate() {
            *p = [a[0] + r[4 + 2 * k] / s, a[1] + r[5 + 2 * k] / s];
        }
        found.push(Detection {
            score,
            bbox: [cx - w / 2.0, cy - h / 2.0, w, h],
            points,
        });
    }
    Ok(weighted_nms(found, 0.3))
}

fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let x0 = a[0].max(b[0]);
    let y0 = a[1].max(b[1]);
    let x1 = (a[0] + a[2]).min(b[0] + b[2]);
    let y1 = (a[1] + a[3]).min(b[1] + b[3]);
    let inter = (x1 - x0).max(0.0) * (y1 - y0).max(0.0);
    let union = a[2] * a[3] + b[2] * b[3] - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// MediaPipe's weighted suppression: the best remaining detection takes
/// every other overlapping it by more than `threshold`, and its box and
/// points become their score-weighted mean (one face fires several
/// neighbouring anchors; the mean is steadier than any one of them).
fn weighted_nms(mut found: Vec<Detection>, threshold: f32) -> Vec<Detection> {
    // Ties broken by position so the order never depends on the sort.
    found.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(a.bbox[0].total_cmp(&b.bbox[0]))
            .then(a.bbox[1].total_cmp(&b.bbox[1]))
    });
    let mut kept = Vec::new();
    while let Some(best) = found.first().cloned() {
        let (near, far): (Vec<Detection>, Vec<Detection>) = found
            .into_iter()
            .partition(|d| iou(&best.bbox, &d.bbox) > threshold);
        let total: f32 = near.iter().map(|d| d.score).sum();
        let mut merged = Detection {
            score: best.score,
            bbox: [0.0; 4],
            points: [[0.0; 2]; 6],
        };
        for d in &near {
            let w = d.score / total;
            for (m, v) in merged.bbox.iter_mut().zip(d.bbox) {
                *m += w * v;
            }
            for (m, p) in merged.points.iter_mut().zip(d.points) {
                m[0] += w * p[0];
                m[1] += w * p[1];
            }
        }
        kept.push(merged);
        found = far;
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(score: f32, x: f32) -> Detection {
        Detection {
            score,
            bbox: [x, 0.1, 0.2, 0.2],
            points: [[x, 0.1]; 6],
        }
    }

    #[test]
    fn overlapping_detections_merge_weighted_by_score_and_apart_ones_stay() {
        let kept = weighted_nms(vec![det(0.6, 0.12), det(0.9, 0.1), det(0.8, 0.6)], 0.3);
        assert_eq!(kept.len(), 2);
        assert_eq!(kept[0].score, 0.9);
        let want = (0.9 * 0.1 + 0.6 * 0.12) / 1.5;
        assert!((kept[0].bbox[0] - want).abs() < 1e-6, "{:?}", kept[0]);
        assert!((kept[0].points[3][0] - want).abs() < 1e-6);
        assert_eq!(kept[1].bbox[0], 0.6);
    }

    #[test]
    fn the_anchors_cover_both_grids_in_the_models_order() {
        let a = anchors();
        assert_eq!(a.len(), 896);
        assert_eq!(a[0], [1.0 / 32.0, 1.0 / 32.0]);
        assert_eq!(a[1], a[0]);
        assert_eq!(a[2], [3.0 / 32.0, 1.0 / 32.0]);
        assert_eq!(a[512], [1.0 / 16.0, 1.0 / 16.0]);
        assert_eq!(a[895], [15.0 / 16.0, 15.0 / 16.0]);
    }

    #[test]
    fn a_flat_grey_input_has_no_face() {
        let found = detect(vec![0.0; INPUT * INPUT * 3], 0.5).expect("model runs");
        assert!(found.is_empty(), "{found:?}");
    }
}
