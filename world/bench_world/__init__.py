"""The toy world: a world the project draws itself (`render`), an oracle that reads each
picture's ground truth back (`oracle`) and a CLIP trained on it (`clip`), so that models trained
on it on a CPU can show personalization that works and metrics checked against the truth."""

# label -> (method, options): the rows of the world report, the paper's comparisons
REPORT_RUNS = {
    "real": ("real", {}),
    "base": ("base", {}),
    "textual_inversion": ("textual_inversion", {}),
    "dreambooth_lora": ("dreambooth_lora", {}),
    "dreambooth_lora+prior": ("dreambooth_lora", {"prior_preservation": True}),
}
