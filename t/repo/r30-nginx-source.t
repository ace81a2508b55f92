# make module builds against the source of the nginx that will load it: a
# source tree and a binary of two versions are refused before anything is
# built, with a message naming both; the binary's configure arguments are
# taken from its nginx -V (but its =dynamic and third-party modules);
# NGINX_BIN= takes no binary's flags, --with-compat alone.
# tools/nginx-version tells nginx, freenginx and Angie trees apart.
use strict;
use warnings;
use Cwd ();
use File::Path qw(make_path);
use File::Temp qw(tempdir);
use Test::More;

my $nginx = $ENV{WA_NGINX} || '/usr/sbin/nginx';
plan skip_all => "no $nginx" unless -x $nginx;

my $dir = tempdir(CLEANUP => 1);

# a source tree of the given headers only: the check comes before configure
sub tree {
    my ($name, %h) = @_;
    make_path("$dir/$name/src/core", "$dir/$name/auto");
    for my $file (keys %h) {
        open my $fh, '>', "$dir/$name/src/core/$file" or die "$file: $!";
        print $fh $h{$file};
        close $fh;
    }
    # a release tree of a git repository: configure in auto/, failing
    open my $fh, '>', "$dir/$name/auto/configure" or die "configure: $!";
    print $fh "#!/bin/sh\necho configure ran: \"\$*\"; exit 1\n";
    close $fh;
    chmod 0755, "$dir/$name/auto/configure";
    return "$dir/$name";
}

sub version { my $v = `sh tools/nginx-version @_`; chomp $v; $v }

my $plain = tree('plain', 'nginx.h' => qq(#define NGINX_VERSION      "1.99.0"\n)
                 . qq(#define NGINX_VER          "nginx/" NGINX_VERSION\n));
my $free = tree('free', 'nginx.h' => qq(#define NGINX_VERSION      "1.27.1"\n)
                . qq(#define NGINX_NAME         "freenginx"\n));
my $angie = tree('angie',
                 'nginx.h' => qq(#define NGINX_VERSION      "1.31.2"\n),
                 'angie.h' => qq(#define ANGIE_VERSION      "1.12.1"\n));
is version('--source', $plain), 'nginx/1.99.0', 'an nginx tree';
is version('--source', $free), 'freenginx/1.27.1', 'a freenginx tree';
is version('--source', $angie), 'Angie/1.12.1', 'an Angie tree';
my $bin = version('--binary', $nginx);
like $bin, qr{^nginx/\d+\.\d+\.\d+$}, "the binary: $bin";
is version('--binary', "$dir/none"), '', 'not a binary: nothing';
# Angie's -v names the nginx it follows on a second line
open my $fake, '>', "$dir/angie-bin" or die "angie-bin: $!";
print $fake "#!/bin/sh\necho 'Angie version: Angie/1.12.1' >&2\n"
    . "echo 'nginx version: nginx/1.31.2' >&2\n";
close $fake;
chmod 0755, "$dir/angie-bin";
is version('--binary', "$dir/angie-bin"), 'Angie/1.12.1', 'an Angie binary';

sub make_module {
    my ($tree, @args) = @_;
    my $cmd = "make --no-print-directory module NGINX_SRC=$tree @args "
        . "BUILD=$dir/b";
    return scalar `$cmd 2>&1`;
}

my $out = make_module($plain, "NGINX_BIN=$nginx");
isnt $? >> 8, 0, 'a source of another version than the binary: refused';
my $want = quotemeta "$plain is nginx/1.99.0, $nginx is $bin: a module "
    . 'loads only into the nginx it is built for';
like $out, qr/$want/, 'naming both';
unlike $out, qr/configure ran/, 'before configure';

$out = make_module($plain, 'NGINX_BIN=');
like $out, qr/configure ran/,
    'NGINX_BIN= : no binary to match, configure (from auto/) runs';
unlike $out, qr/loads only into/, '... without the version check';
my $repo = Cwd::getcwd();
like $out, qr/^configure ran: --with-compat --add-dynamic-module=\Q$repo\E$/m,
    '... with --with-compat alone';

# a tree of the binary's own version: its nginx -V's arguments
my ($v) = $bin =~ m{/([\d.]+)$};
my $same = tree('same', 'nginx.h' => qq(#define NGINX_VERSION      "$v"\n));
$out = make_module($same, "NGINX_BIN=$nginx");
my ($args) = $out =~ /^configure ran: (.*)$/m;
ok defined $args, "the binary's version: configure runs" or diag $out;
$args //= '';
my @want = `perl tools/nginx-flags $nginx`;
chomp @want;
cmp_ok scalar @want, '>', 0, 'nginx -V has configure arguments';
is_deeply [grep { index(" $args ", " $_ ") < 0 } @want], [],
    "... which configure has, every one";
like $args, qr/--add-dynamic-module=\Q$repo\E/, '... and this module';
unlike $args, qr/=dynamic/, "none of the binary's =dynamic modules";
like $args, qr/--with-cc-opt=/, 'its compiler options'
    if `$nginx -V 2>&1` =~ /--with-cc-opt=/;

done_testing;
