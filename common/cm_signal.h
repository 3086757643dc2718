/*
 * cm_signal.h - SIGTERM/SIGINT: the first asks for a graceful drain, the second exits at once.
 * SIGPIPE is ignored. Loops poll cm_signal_stopping() at least every 100 ms.
 */
#ifndef CM_SIGNAL_H
#define CM_SIGNAL_H

void cm_signal_setup(void);
int cm_signal_stopping(void);
/* Asks for a stop from inside the program (as if SIGTERM came). */
void cm_signal_request_stop(void);

#endif
