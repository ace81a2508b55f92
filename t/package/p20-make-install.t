# make install, for those who do not use the packages: DESTDIR and PREFIX
# honoured, the unit naming the installed worker, the installed snippet
# loading the installed module, and an administrator's configuration never
# overwritten.
use strict;
use warnings;
use lib 't/lib';
use File::Temp qw(tempdir);
use Test::More;

my $tmp = tempdir('wa-install-XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $nginx = $ENV{WA_NGINX} || '/usr/sbin/nginx';

sub make_install {
    my (@vars) = @_;
    # a make of its own, not one of the make running this test
    local $ENV{MAKEFLAGS};
    local $ENV{MAKELEVEL};
    my $out = `make -s install @vars 2>&1`;
    is $?, 0, "make install @vars" or diag $out;
}

sub slurp {
    open my $fh, '<', $_[0] or return '';
    local $/;
    return <$fh>;
}

# staged, as a packager would: the final paths, under DESTDIR
my $dest = "$tmp/stage";
make_install("DESTDIR=$dest", 'PREFIX=/opt/wa-relay');
my @want = qw(/opt/wa-relay/sbin/wa-relayd
    /opt/wa-relay/share/man/man8/wa-relayd.8
    /opt/wa-relay/lib/systemd/system/wa-relayd.service
    /opt/wa-relay/share/nginx/modules-available/mod-http-whatsapp.conf
    /opt/wa-relay/share/doc/wa-relay/README.md
    /opt/wa-relay/share/doc/wa-relay/examples/wa-relayd.env
    /opt/wa-relay/share/doc/wa-relay/examples/whatsapp-site.conf
    /opt/wa-relay/share/doc/wa-relay/schema/messages.json
    /opt/wa-relay/share/doc/wa-relay/media.md
    /opt/wa-relay/share/doc/wa-relay/examples/consumers/wa_consumer.py
    /etc/wa-relay/wa-relayd.env);
my ($modules) = `$nginx -V 2>&1` =~ /--modules-path=(\S+)/;
push @want, "$modules/ngx_http_whatsapp_module.so";
ok -f "$dest$_", $_ for @want;
ok -x "$dest/opt/wa-relay/sbin/wa-relayd", 'the worker is executable';
like slurp("$dest/opt/wa-relay/lib/systemd/system/wa-relayd.service"),
     qr{^ExecStart=/opt/wa-relay/sbin/wa-relayd$}m,
     'the unit runs the installed worker';
is slurp("$dest/opt/wa-relay/share/nginx/modules-available/"
         . 'mod-http-whatsapp.conf'),
   "load_module $modules/ngx_http_whatsapp_module.so;\n",
   'the snippet loads the module from where nginx looks for modules';

# the sandbox of the unit, as systemd rates it (0 best, 10 worst)
my $unit = "$dest/opt/wa-relay/lib/systemd/system/wa-relayd.service";
my $sec = `systemd-analyze security --offline=true $unit 2>&1`;
my ($level) = $sec =~ /Overall exposure level for \S+: ([\d.]+)/;
ok defined $level && $level <= 2, 'systemd-analyze security: exposure '
                                  . ($level // '?') . ' of 10'
    or diag $sec;

# the man page renders without a warning from groff
my $warn = `LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -E UTF-8 -l -Tutf8 -Z \\
            $dest/opt/wa-relay/share/man/man8/wa-relayd.8 2>&1 >/dev/null`;
is $warn, '', 'wa-relayd(8): no groff warning';
like `man -l $dest/opt/wa-relay/share/man/man8/wa-relayd.8 2>/dev/null`,
     qr/--redis-password-file value.*Environment: WA_REDIS_PASSWORD_FILE/s,
     'wa-relayd(8) lists the options of the table';

# live, to a prefix of its own: nginx -t through the installed snippet
my $p = "$tmp/live";
make_install("PREFIX=$p", "NGX_MODULES=$p/modules", "SYSCONFDIR=$p/etc");
open my $fh, '>', "$tmp/nginx.conf" or die $!;
print $fh "include $p/share/nginx/modules-available/mod-http-whatsapp.conf;\n",
    "pid $tmp/nginx.pid;\nerror_log $tmp/error.log;\nevents {}\n",
    "http { server { listen 127.0.0.1:1; location / { whatsapp_status; } } }\n";
close $fh;
my $out = `$nginx -t -c $tmp/nginx.conf 2>&1`;
is $?, 0, 'nginx -t loads the installed module' or diag $out;
like `$p/sbin/wa-relayd --help 2>&1`, qr/usage: wa-relayd/,
     'the installed worker runs';

# an administrator's configuration stays as it is
open $fh, '>>', "$p/etc/wa-relay/wa-relayd.env" or die $!;
print $fh "WA_REDIS=10.0.0.9:6379\n";
close $fh;
make_install("PREFIX=$p", "NGX_MODULES=$p/modules", "SYSCONFDIR=$p/etc");
like slurp("$p/etc/wa-relay/wa-relayd.env"), qr/^WA_REDIS=10\.0\.0\.9:6379$/m,
     'a second make install keeps the configuration written in between';

done_testing;
