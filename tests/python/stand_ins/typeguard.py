"""Test stand-in for `typeguard` (see README.md): `typechecked` checks nothing."""


def typechecked(target=None, **_options):
    if target is None:
        return lambda function: function
    return target
