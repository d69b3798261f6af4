"""The one error type users see: the CLI prints its message on one line and exits with 2."""


class BenchError(Exception):
    """Bad input or a missing resource; the message names the file or value and the fix."""


class MissingModel(BenchError):
    """Weights that are neither in the local cache nor downloadable. `model` names them and
    `local_option` is how to pass a local copy instead, so one error can list every missing model
    of a run."""

    def __init__(self, message: str, *, model: str, local_option: str) -> None:
        super().__init__(message)
        self.model = model
        self.local_option = local_option


class MissingModels(BenchError):
    """Several missing models, named in one line with how to pass each."""

    def __init__(self, errors: list[MissingModel]) -> None:
        unique = list({e.model: e for e in errors}.values())
        listed = "; ".join(f"{e.model} (or pass {e.local_option})" for e in unique)
        super().__init__(
            f"models not in the local cache and not downloadable here: {listed}; download them "
            "on a machine with network, or pass local copies with those options"
        )
        self.errors = unique


def raise_missing(errors: list[MissingModel]) -> None:
    """Raise the one missing model's own error, or one error naming them all."""
    if errors:
        combined = MissingModels(errors)
        raise combined.errors[0] if len(combined.errors) == 1 else combined
