/* poolgate doctor (doctor.c): checks of this host's poolgate setup. */
#ifndef PG_CLI_DOCTOR_H
#define PG_CLI_DOCTOR_H

struct doctor_opts {
    const char *config_path;
    const char *helper_path;
    const char *pam_dir;     /* PAM services to scan (default /etc/pam.d) */
    const char *sshd;        /* the sshd binary (default /usr/sbin/sshd) */
    const char *sshd_config; /* passed to sshd -T -f; NULL: sshd's own */
};

/* Print one line per check (ok, warn, fail, each with the fix); returns
 * the exit status: 0 when nothing failed, 1 otherwise. */
int doctor_run(const struct doctor_opts *o);

#endif
