"""``corpusforge export``: a trained CLIP model's image and text encoders as ONNX files, checked
against torch with onnxruntime before the export is declared done (docs/train.md, "Export and
serving")."""
