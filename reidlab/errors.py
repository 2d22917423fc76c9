"""Errors reidlab raises on bad input. Each message names the file or folder and what was expected."""


class ReidlabError(Exception):
    """Base class for reidlab's own errors."""


class DatasetError(ReidlabError):
    """A dataset folder, file name or split is not what the loader expects."""


class ImageReadError(ReidlabError):
    """An image file is unreadable, corrupt or empty."""
