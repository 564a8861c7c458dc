"""The rmap schemes and policies shipped with mmcore, installed as ``mmcore_plugins``.

Each module is registered under the ``mmcore`` entry-point group in pyproject.toml, exactly
as a third-party plugin would be; copy one (or contrib/plugin_template) to start a new one.
"""
