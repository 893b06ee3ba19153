"""The `catalogs:` entries of the configuration: one Bacula or Bareos catalog database each."""

from zoneinfo import ZoneInfo

from exporter.core.settings import DatabaseConfig, Duration, Name, Zone


class CatalogConfig(DatabaseConfig):
    """One Bacula or Bareos catalog database."""

    name: Name
    timezone: Zone
    refresh_interval: Duration = 300.0  # full re-read of clients, pools and volumes
    restore_window: Duration = 0.0  # how far back restore points are computed; 0 = off
    warning_is_success: bool = True
    expose_volumes: bool = False  # series per volume: opt-in, thousands of tapes are thousands

    @property
    def zone(self) -> ZoneInfo:
        """Return the Director's time zone."""
        return ZoneInfo(self.timezone)
