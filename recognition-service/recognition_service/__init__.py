"""Face detection, embeddings and 1:1 verification (faceauth.recognition.v1)."""
