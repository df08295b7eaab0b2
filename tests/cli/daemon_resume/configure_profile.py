"""The kill/resume test's profile: caching off (the reference must not be a copy of the killed job's result) and a
60 s daemon timeout (circus answers slowly on a busy machine; the client's default is 2 s)."""

from aiida_qdtraps.profile import PROFILE_NAME, _get_config

config = _get_config()
config.set_option('caching.enabled_for', [], scope=PROFILE_NAME)
config.set_option('daemon.timeout', 60, scope=PROFILE_NAME)
config.store()
