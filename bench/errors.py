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


def os_error_of(error: BaseException, filename: str | None = None) -> OSError | None:
    """The operating system's error inside `error`: the error itself when it is an OSError, or
    the one a library reports in its own type and words ("... (os error 28)", as safetensors'
    Rust writer does), as an OSError naming `filename`; None when it holds none. So a full disk
    reads the same whichever library was writing."""
    import errno as codes
    import os
    import re

    if isinstance(error, OSError):
        return error
    found = re.search(r"\(os error (\d+)\)", str(error))
    if found is None or int(found.group(1)) not in codes.errorcode:
        return None
    code = int(found.group(1))
    return OSError(code, os.strerror(code), filename)
