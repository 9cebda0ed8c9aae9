/* The Filter Manager double's test client (driver/hosted/double/run.py): sends the
 * double's requests (docs/windows.md, "The double's protocol") from several threads and
 * writes every response with its timing. HOSTED under Wine, not Windows.
 *
 *   double-client.exe IN OUT [SECONDS [PAUSE_MS]]
 *
 * IN: messages, each `u32 length, u16 thread, u16 0, length bytes` (a whole request,
 * header included). Thread t (0..15) sends its messages in file order, one at a time,
 * through DeviceIoControl on \\.\FltMgrDouble; threads run at once. With SECONDS, each
 * thread goes through its messages again and again until that many seconds have passed
 * (load that lasts while the runner does something else), waiting PAUSE_MS between two
 * requests of a thread (default 0).
 * OUT: records `u32 message index, u32 round, u32 length, i32 Win32 error (0: ok),
 * u64 start, u64 end (QueryPerformanceCounter), length bytes` (the response).
 * Exit: 0 every request completed; 3 the device did not open or some DeviceIoControl
 * failed (its record carries the error, stderr says which); 64 usage or input errors;
 * 65 a thread could not be started or waited for. Another code is a crash.
 * Built with MinGW-w64 (x86_64-w64-mingw32-gcc), as driver/hosted/ioctl.c. */
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IOCTL_DOUBLE 0x00222740u /* CTL_CODE(0x22, 0x9D0, METHOD_BUFFERED, FILE_ANY_ACCESS) */
#define MAX_MESSAGE (256u * 1024u)
#define MAX_THREADS 16
#define MAX_MESSAGES 65536

struct message {
    unsigned thread;
    unsigned length;
    const unsigned char *bytes;
};

static struct message messages[MAX_MESSAGES];
static unsigned message_count;
static FILE *out;
static CRITICAL_SECTION out_lock;
static LONG failures;
static double seconds;
static DWORD pause_ms;
static LARGE_INTEGER frequency, started;

static int elapsed(void) {
    LARGE_INTEGER now;
    if (seconds <= 0) return 1;
    QueryPerformanceCounter(&now);
    return (double)(now.QuadPart - started.QuadPart) / (double)frequency.QuadPart >= seconds;
}

static DWORD WINAPI sender(LPVOID arg) {
    unsigned me = (unsigned)(ULONG_PTR)arg, i, round = 0, any = 0;
    unsigned char *response = malloc(MAX_MESSAGE);
    HANDLE h = CreateFileW(L"\\\\.\\FltMgrDouble", GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING,
                           FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE || !response) {
        fprintf(stderr, "thread %u: open \\\\.\\FltMgrDouble: error %lu\n", me, GetLastError());
        InterlockedIncrement(&failures);
        free(response);
        return 2;
    }
    do {
        for (i = 0; i < message_count; i++) {
            DWORD got = 0, error = 0;
            LARGE_INTEGER t0, t1;
            unsigned header[4];
            if (messages[i].thread != me) continue;
            any = 1;
            QueryPerformanceCounter(&t0);
            if (!DeviceIoControl(h, IOCTL_DOUBLE, (void *)messages[i].bytes, messages[i].length, response,
                                 MAX_MESSAGE, &got, NULL)) {
                error = GetLastError();
                got = 0;
                InterlockedIncrement(&failures);
                fprintf(stderr, "thread %u: message %u, round %u: DeviceIoControl: error %lu\n", me, i, round, error);
            }
            QueryPerformanceCounter(&t1);
            header[0] = i;
            header[1] = round;
            header[2] = got;
            header[3] = error;
            EnterCriticalSection(&out_lock);
            fwrite(header, sizeof header, 1, out);
            fwrite(&t0.QuadPart, 8, 1, out);
            fwrite(&t1.QuadPart, 8, 1, out);
            fwrite(response, 1, got, out);
            LeaveCriticalSection(&out_lock);
            if (pause_ms) Sleep(pause_ms);
        }
        round++;
    } while (any && !elapsed());
    CloseHandle(h);
    free(response);
    return 0;
}

int main(int argc, char **argv) {
    FILE *in;
    long size;
    unsigned char *all;
    unsigned long at = 0;
    unsigned t, used[MAX_THREADS] = {0};
    HANDLE threads[MAX_THREADS];
    DWORD n = 0;
    if (argc < 3 || argc > 5) {
        fprintf(stderr, "usage: double-client.exe IN OUT [SECONDS [PAUSE_MS]]\n");
        return 64;
    }
    if (argc >= 4) seconds = atof(argv[3]);
    if (argc == 5) pause_ms = (DWORD)atol(argv[4]);
    if (!(in = fopen(argv[1], "rb")) || fseek(in, 0, SEEK_END) || (size = ftell(in)) < 0 || fseek(in, 0, SEEK_SET)) {
        fprintf(stderr, "%s: cannot read\n", argv[1]);
        return 64;
    }
    all = malloc(size ? (size_t)size : 1);
    if (!all || fread(all, 1, (size_t)size, in) != (size_t)size) {
        fprintf(stderr, "%s: cannot read\n", argv[1]);
        return 64;
    }
    fclose(in);
    while (at < (unsigned long)size) {
        unsigned length, thread;
        if ((unsigned long)size - at < 8 || message_count == MAX_MESSAGES) {
            fprintf(stderr, "%s: byte %lu: a message header needs 8 bytes (or too many messages)\n", argv[1], at);
            return 64;
        }
        memcpy(&length, all + at, 4);
        thread = all[at + 4] | (all[at + 5] << 8);
        if (length > MAX_MESSAGE || length > (unsigned long)size - at - 8 || thread >= MAX_THREADS) {
            fprintf(stderr, "%s: byte %lu: message of %u bytes for thread %u (limits %u bytes, %u threads)\n",
                    argv[1], at, length, thread, MAX_MESSAGE, MAX_THREADS);
            return 64;
        }
        messages[message_count].thread = thread;
        messages[message_count].length = length;
        messages[message_count].bytes = all + at + 8;
        message_count++;
        used[thread] = 1;
        at += 8 + length;
    }
    if (!(out = fopen(argv[2], "wb"))) {
        fprintf(stderr, "%s: cannot write\n", argv[2]);
        return 64;
    }
    InitializeCriticalSection(&out_lock);
    QueryPerformanceFrequency(&frequency);
    QueryPerformanceCounter(&started);
    for (t = 0; t < MAX_THREADS; t++) {
        if (!used[t]) continue;
        if (!(threads[n] = CreateThread(NULL, 0, sender, (LPVOID)(ULONG_PTR)t, 0, NULL))) {
            fprintf(stderr, "thread %u: CreateThread: error %lu\n", t, GetLastError());
            return 65;
        }
        n++;
    }
    if (WaitForMultipleObjects(n, threads, TRUE, INFINITE) == WAIT_FAILED) {
        fprintf(stderr, "WaitForMultipleObjects: error %lu\n", GetLastError());
        return 65;
    }
    if (fclose(out)) {
        fprintf(stderr, "%s: cannot write\n", argv[2]);
        return 64;
    }
    return failures ? 3 : 0;
}
