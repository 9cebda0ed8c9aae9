/* The hosted drill's control client (driver/hosted/boot/july.py): sends one control request
 * to the driver's control device and prints the response, both as hex.
 *
 *   ioctl.exe [--read] REQUEST_HEX      -> stdout: RESPONSE_HEX
 *
 * --read: the device opened for reading only (GENERIC_READ) and the read IOCTL, as
 * `failsafectl status` and `watch` send query and read events; without it, read and
 * write access and the IOCTL every request may use.
 *
 * Exit: 0 the IOCTL completed; 2 the device did not open; 3 DeviceIoControl failed
 * (the Windows error code is printed on stderr). The protocol itself is encoded and
 * decoded by boot/protocol.py from docs/control-protocol.md, independently of the Rust
 * code.
 * Built with MinGW-w64 (x86_64-w64-mingw32-gcc) because failsafectl.exe needs
 * bcryptprimitives.dll, which Wine 8.0 lacks. */
#include <windows.h>
#include <stdio.h>
#include <string.h>

#define IOCTL_CONTROL 0x0022E400u      /* CTL_CODE(0x22, 0x900, METHOD_BUFFERED, read|write) */
#define IOCTL_CONTROL_READ 0x00226404u /* CTL_CODE(0x22, 0x901, METHOD_BUFFERED, read) */
#define RESPONSE_MAX 100136u           /* MAX_RESPONSE */

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

int main(int argc, char **argv) {
    static unsigned char in[256], out[RESPONSE_MAX];
    size_t n = 0, len;
    DWORD got = 0, i;
    HANDLE h;
    int read_only = argc == 3 && strcmp(argv[1], "--read") == 0;
    const char *hex = argv[argc - 1];
    if ((argc != 2 && !read_only) || (len = strlen(hex)) % 2 != 0 || len / 2 > sizeof in) {
        fprintf(stderr, "usage: ioctl.exe [--read] REQUEST_HEX (at most %u bytes)\n", (unsigned)sizeof in);
        return 64;
    }
    for (n = 0; n < len / 2; n++) {
        int hi = hexval(hex[2 * n]), lo = hexval(hex[2 * n + 1]);
        if (hi < 0 || lo < 0) {
            fprintf(stderr, "not hex at character %u\n", (unsigned)(2 * n));
            return 64;
        }
        in[n] = (unsigned char)(hi * 16 + lo);
    }
    h = CreateFileW(L"\\\\.\\FailsafeFlt", read_only ? GENERIC_READ : GENERIC_READ | GENERIC_WRITE, 0,
                    NULL, OPEN_EXISTING, FILE_ATTRIBUTE_NORMAL, NULL);
    if (h == INVALID_HANDLE_VALUE) {
        fprintf(stderr, "open \\\\.\\FailsafeFlt: error %lu\n", GetLastError());
        return 2;
    }
    /* The driver answers one request at a time and turns a second away with
     * STATUS_DEVICE_BUSY (ERROR_BUSY): send it again, 20 ms apart for up to a second, as
     * failsafectl does (docs/windows.md, "Control channel"). */
    for (i = 0;; i++) {
        DWORD err;
        if (DeviceIoControl(h, read_only ? IOCTL_CONTROL_READ : IOCTL_CONTROL, in, (DWORD)n, out,
                            RESPONSE_MAX, &got, NULL))
            break;
        err = GetLastError();
        if (err != ERROR_BUSY || i >= 50) {
            fprintf(stderr, "DeviceIoControl: error %lu\n", err);
            CloseHandle(h);
            return 3;
        }
        Sleep(20);
    }
    CloseHandle(h);
    for (i = 0; i < got; i++) printf("%02x", out[i]);
    printf("\n");
    return 0;
}
