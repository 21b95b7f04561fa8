"""``corpusforge serve``: embeddings of texts and images over HTTP from an exported model folder,
with onnxruntime and without torch (docs/train.md, "Export and serving")."""
