"""The participant's starter kit: `train` (recognition training), `predict` (checkpoint -> submission file),
`config` (layered YAML configs), `data` (packed faces, identity split, batches), `submit` (the upload client), and
the detection kit's `train_detection` / `predict_detection`. See starter_kit/README.md."""
