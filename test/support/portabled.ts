// The tests boot real systemd-portabled with the same code `mkportable try` uses.
export * from '../../src/try/container.js';
