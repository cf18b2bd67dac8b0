"""The one exception type the exporter raises for collections it cannot serialize."""


class ExportError(ValueError):
    """A brick collection cannot be exported; the message names the brick at fault."""
