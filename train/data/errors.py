"""The one error type of the data layer."""


class DataError(ValueError):
    """A data file (annotations, image, TFRecord) is missing, unreadable or malformed.

    The message always names the file and the problem.
    """
