/** Remora's version, printed by `remora --version`, the ready line, /server_info and the dashboard. */
export const VERSION = '0.1.0';
